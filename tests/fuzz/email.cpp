// Fuzz target: the e-mail / MIME reader of the spam model (models/spam/email.h): header
// splitting, quoted-printable, base64, RFC 2047 words, HTML stripping, and the text and words
// the classifier reads. These functions take any bytes: none may throw, and their text must
// be valid UTF-8.
#include "data/vocab.h"
#include "fuzz.h"
#include "models/spam/email.h"

using namespace focus;
namespace spam = focus::models::spam;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw = focus_fuzz::as_text(data, size);
  try {
    spam::EmailParts parts = spam::split_headers(raw);
    (void)parts.header("subject");
    (void)spam::decode_quoted_printable(raw);
    (void)spam::decode_base64(raw);
    (void)spam::decode_header_value(raw);
    (void)spam::strip_html(raw);
    const std::string text = spam::email_text(raw);
    FUZZ_REQUIRE(data::is_valid_utf8(text), "email_text is not valid UTF-8");
    for (const std::string& w : spam::email_words(raw)) {
      FUZZ_REQUIRE(!w.empty() && w.size() <= spam::kMaxWordBytes, "word length");
      FUZZ_REQUIRE(data::is_valid_utf8(w), "a word is not valid UTF-8");
    }
  } catch (const std::exception& e) {
    focus_fuzz::fail(std::string("the e-mail reader threw: ") + e.what());
  }
  return 0;
}
