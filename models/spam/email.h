#pragma once
/// From a raw RFC-822 e-mail to the words the spam classifier reads.
///
/// Preprocessing (what the model sees, and why):
///   * Headers: only `Subject` and `From` are kept (RFC 2047 encoded words such as
///     `=?iso-8859-1?Q?...?=` decoded). Everything else is dropped: `Received`, `Message-Id`,
///     `Return-Path`, `Delivered-To`, `Date`, `X-*` ... name the hosts, dates and tools through
///     which each SpamAssassin folder was collected, so a model could learn the corpus source
///     instead of the content (and a few messages carry spam-filter verdicts in X- headers).
///   * Header section: lines `Name: value` with folded continuation lines, ended by the first
///     blank line. A leading mbox `From ` line is skipped. A malformed message without the blank
///     line ends its headers at the first line that is neither a header nor a continuation; a
///     message with no header at all is all body. CRLF line ends are accepted.
///   * Body: MIME is followed (multipart/* parts, message/rfc822, nesting depth <= 8); text/plain
///     and text/html parts (and a body without Content-Type) are read, their
///     Content-Transfer-Encoding undone (quoted-printable, base64); in multipart/alternative the
///     text/plain version is preferred. Non-text parts (images, attachments) are skipped but
///     leave a marker word `attachment` followed by their MIME type's words (`image gif`).
///   * HTML (text/html parts, or a body that starts like HTML): tags, comments, <script> and
///     <style> contents are removed; common entities (&amp; &nbsp; &#NNN; ...) decoded.
///   * Bytes that are not valid UTF-8 (Latin-1, GB2312 ... undeclared charsets) are replaced by
///     U+FFFD (data::sanitize_utf8); the model thus sees a run of "non-ASCII" letters for them.
///   * Words: data::split_words (runs of letters/digits lower-cased, each punctuation character
///     alone); punctuation is dropped except `!` and `$` (spam cues), and words longer than
///     kMaxWordBytes (base64 debris, long URLs' path pieces) are dropped.
///   * The classifier's sequence is <bos> + the first max_len - 1 words (Subject first, so it
///     is never truncated away); <bos> doubles as the CLS position and keeps an empty
///     message non-empty.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace focus::models::spam {

/// Words longer than this many bytes are dropped by email_words.
inline constexpr size_t kMaxWordBytes = 32;

/// A message split at the end of its header section.
struct EmailParts {
  /// Headers in order: name lower-cased, value unfolded (continuation lines joined by one
  /// space) and trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Everything after the header section (CRLF turned into LF).
  std::string body;
  /// The first header with this (case-insensitive) name's value, or "" if absent.
  std::string header(std::string_view name) const;
};

/// Splits raw message text into headers and body (see the rules above). Never throws; empty
/// input -> no headers, empty body.
EmailParts split_headers(std::string_view raw);

/// Undoes quoted-printable encoding (=XX bytes, soft line breaks "=\n"); malformed escapes stay
/// as they are.
std::string decode_quoted_printable(std::string_view text);
/// Decodes base64, skipping characters outside the alphabet (line breaks) and stopping at '='.
std::string decode_base64(std::string_view text);
/// Decodes RFC 2047 encoded words (=?charset?B?...?= and =?charset?Q?...?=) in a header value;
/// the bytes are kept as they are (charset not converted).
std::string decode_header_value(std::string_view value);
/// Removes HTML tags, comments, <script>/<style> contents; decodes common entities.
std::string strip_html(std::string_view html);

/// The readable text of a message: "Subject: ...\nFrom: ...\n" then the body text as above,
/// valid UTF-8.
std::string email_text(std::string_view raw);

/// The words of email_text(raw) after the filtering above (no truncation).
std::vector<std::string> email_words(std::string_view raw);

}  // namespace focus::models::spam
