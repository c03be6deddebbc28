// models/char_gpt/finetune: the speeches mapped into a char-gpt vocabulary, the --lora
// KEY=VALUE list and the fine-tuning config (the command end to end: tests/cli/test_finetune.cpp).
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <string>
#include <vector>

#include "models/char_gpt/char_gpt.h"
#include "models/char_gpt/finetune.h"
#include "models/char_gpt/program.h"

using namespace focus;
using namespace focus::models::char_gpt;

namespace {

std::string mapped_text(const VocabMapping& m, const data::Vocab& v) { return decode(v, m.ids); }

void check_lora_error(const std::string& spec, const std::string& message) {
  CAPTURE(spec);
  CHECK_THROWS_WITH_AS(parse_lora_spec(spec), doctest::Contains(message.c_str()), Error);
}

}  // namespace

TEST_SUITE("models_char_gpt_finetune") {
  TEST_CASE("ascii_equivalent: quotes, dashes, accents, ligatures, spaces; none for symbols") {
    CHECK(ascii_equivalent("’") == "'");
    CHECK(ascii_equivalent("‘") == "'");
    CHECK(ascii_equivalent("`") == "'");
    CHECK(ascii_equivalent("“") == "\"");
    CHECK(ascii_equivalent("”") == "\"");
    CHECK(ascii_equivalent("–") == "-");
    CHECK(ascii_equivalent("‑") == "-");
    CHECK(ascii_equivalent("—") == "--");
    CHECK(ascii_equivalent("…") == "...");
    CHECK(ascii_equivalent("é") == "e");
    CHECK(ascii_equivalent("á") == "a");
    CHECK(ascii_equivalent("ï") == "i");
    CHECK(ascii_equivalent("ó") == "o");
    CHECK(ascii_equivalent("Ñ") == "N");
    CHECK(ascii_equivalent("č") == "c");
    CHECK(ascii_equivalent("æ") == "ae");
    CHECK(ascii_equivalent("Œ") == "OE");
    CHECK(ascii_equivalent("ß") == "ss");
    CHECK(ascii_equivalent("\xC2\xA0") == " ");  // no-break space
    CHECK(ascii_equivalent("\t") == " ");
    CHECK(ascii_equivalent("•") == "*");
    for (const char* none : {"/", "%", "°", "@", "_", "+", "€", "漢", "ab", ""}) {
      CAPTURE(none);
      CHECK(ascii_equivalent(none).empty());
    }
  }

  TEST_CASE("map_to_vocab: kept, mapped, replaced by a space, dropped; counted once per character") {
    const data::Vocab v = data::Vocab::from_tokens({"a", "b", "e", " ", "'", "-", "\n", "\"", "—"}, false);
    const std::string text = "a’b – é/°\x02" "b\n“a” \xE2\x80\x8B" "ab—";  // ZERO WIDTH SPACE before "ab"
    const VocabMapping m = map_to_vocab(text, v);
    CHECK(mapped_text(m, v) == "a'b - e  b\n\"a\" ab—");
    CHECK(m.characters == 20);
    CHECK(m.kept == 11);
    CHECK(m.mapped == std::map<std::string, int64_t>{{"’", 1}, {"–", 1}, {"é", 1}, {"“", 1}, {"”", 1}});
    CHECK(m.fallback == std::map<std::string, int64_t>{{"/", 1}, {"°", 1}});
    CHECK(m.dropped == std::map<std::string, int64_t>{{"\x02", 1}, {"\xE2\x80\x8B", 1}});
    CHECK(m.count(m.mapped) == 5);
    CHECK(m.summary() ==
          "9 of 20 characters are not in the vocabulary: 5 mapped to ASCII equivalents (é 1, – 1, ’ 1, “ 1, ” 1), "
          "2 replaced by ' ' (/ 1, ° 1), 2 dropped (\\x02 1, \xE2\x80\x8B 1)");
    // An equivalent whose characters are not all in the vocabulary is no equivalent: "æ" ->
    // "ae" needs 'a' and 'e' (both here), "Œ" -> "OE" needs 'O' (missing): the fallback.
    const VocabMapping m2 = map_to_vocab("æŒ…", v);
    CHECK(mapped_text(m2, v) == "ae  ");
    CHECK(m2.fallback == std::map<std::string, int64_t>{{"Œ", 1}, {"…", 1}});
    // Everything in the vocabulary: nothing to say.
    CHECK(map_to_vocab("ab e", v).summary() == "all 4 characters are in the vocabulary");
  }

  TEST_CASE("map_to_vocab: no space in the vocabulary drops what has no equivalent; bad UTF-8 is an error") {
    const data::Vocab v = data::Vocab::from_tokens({"x", "y"}, false);
    const VocabMapping m = map_to_vocab("x/y z", v);
    CHECK(mapped_text(m, v) == "xy");
    CHECK(m.dropped == std::map<std::string, int64_t>{{"/", 1}, {" ", 1}, {"z", 1}});
    CHECK_THROWS_WITH_AS(map_to_vocab("x\xC3", v, "[test]"), "[test] the text is not valid UTF-8 at byte 1", Error);
    CHECK_THROWS_WITH_AS(map_to_vocab("\xC0\xAFx", v, "[test]"), "[test] the text is not valid UTF-8 at byte 0",
                         Error);
    CHECK_THROWS_WITH_AS(map_to_vocab("x\xED\xA0\x80", v, "[test]"), doctest::Contains("not valid UTF-8 at byte 1"),
                         Error);  // a surrogate
  }

  TEST_CASE("speeches_text: the speeches in order, a blank line between them") {
    std::vector<datasets::Speech> s(3);
    s[0].text = "One.";
    s[1].text = "Two.";
    s[2].text = "Three.";
    CHECK(speeches_text(s) == "One.\n\nTwo.\n\nThree.");
    CHECK(speeches_text({}).empty());
  }

  TEST_CASE("parse_lora_spec: PEFT-like defaults, every key, PEFT's spellings, targets after target=") {
    nn::LoraConfig c = parse_lora_spec("r=8");
    CHECK(c.r_ == 8);
    CHECK(c.lora_alpha_ == 16.0);  // 2r
    CHECK(c.lora_dropout_ == 0.0);
    CHECK(c.target_modules_ == std::vector<std::string>{"c_attn", "c_proj", "c_fc"});
    CHECK_FALSE(c.use_rslora_);
    CHECK(parse_lora_spec("r=4").lora_alpha_ == 8.0);
    c = parse_lora_spec(" r=16, alpha=8 ,dropout=0.05,target=c_attn,c_fc,rslora=true");
    CHECK(c.r_ == 16);
    CHECK(c.lora_alpha_ == 8.0);
    CHECK(c.lora_dropout_ == 0.05);
    CHECK(c.target_modules_ == std::vector<std::string>{"c_attn", "c_fc"});
    CHECK(c.use_rslora_);
    c = parse_lora_spec("lora_alpha=32,lora_dropout=0.1,target_modules=mlp.c_fc");
    CHECK(c.r_ == 8);
    CHECK(c.lora_alpha_ == 32.0);
    CHECK(c.lora_dropout_ == 0.1);
    CHECK(c.target_modules_ == std::vector<std::string>{"mlp.c_fc"});
    CHECK(parse_lora_spec("target=c_attn,r=2").target_modules_ == std::vector<std::string>{"c_attn"});
  }

  TEST_CASE("parse_lora_spec: every mistake is an error naming --lora and the bad part") {
    check_lora_error("", "[finetune] char-gpt: --lora: empty; give KEY=VALUE pairs");
    check_lora_error("r=0", "[finetune] char-gpt: --lora 'r=0': r must be a positive integer, got '0'");
    check_lora_error("r=eight", "r must be a positive integer, got 'eight'");
    check_lora_error("r=8.5", "r must be a positive integer, got '8.5'");
    check_lora_error("alpha=-1", "alpha must be a number > 0, got '-1'");
    check_lora_error("alpha=nan", "alpha must be a number > 0, got 'nan'");
    check_lora_error("dropout=1", "dropout must be a number in [0, 1), got '1'");
    check_lora_error("rank=8", "unknown key 'rank'; the keys are r, alpha (lora_alpha), dropout");
    check_lora_error("8", "expected KEY=VALUE, got '8'");
    check_lora_error("r=8,,alpha=2", "expected KEY=VALUE, got ''");
    check_lora_error("r=8,r=4", "r is given twice");
    check_lora_error("alpha=4,lora_alpha=8", "alpha is given twice");
    check_lora_error("target=", "target needs module names");
    check_lora_error("rslora=maybe", "rslora must be true or false, got 'maybe'");
  }

  TEST_CASE("the fine-tuning config: the base's architecture, the method's learning rate, the LoRA keys") {
    training::Config base = default_config();
    base.set("num_layers", 2).set("nhead", 2).set("d_model", 32).set("block_size", 64).set("dropout", 0.1);
    const training::Config full = finetune_config(base, "runs/base/checkpoint.safetensors", nullptr);
    CHECK(full.integer("num_layers") == 2);
    CHECK(full.integer("d_model") == 32);
    CHECK(full.integer("block_size") == 64);
    CHECK(full.real("dropout") == 0.1);
    CHECK(full.str("dataset") == "sotu");
    CHECK(full.str("from") == "runs/base/checkpoint.safetensors");
    CHECK(full.str("method") == "full");
    CHECK(full.real("lr") == 5e-4);
    CHECK(full.integer("steps") == 1000);
    const nn::LoraConfig l = parse_lora_spec("r=4,alpha=4,dropout=0.1,target=c_attn,c_fc");
    const training::Config lora = finetune_config(base, "b.safetensors", &l);
    CHECK(lora.str("method") == "lora");
    CHECK(lora.real("lr") == 2e-3);
    CHECK(lora.real("min_lr") == 2e-4);
    CHECK(lora.integer("steps") == full.integer("steps"));  // the same budget
    CHECK(lora.str("lora_target") == "c_attn,c_fc");
    const nn::LoraConfig back = lora_config_of(lora);
    CHECK(back.r_ == 4);
    CHECK(back.lora_alpha_ == 4.0);
    CHECK(back.lora_dropout_ == 0.1);
    CHECK(back.target_modules_ == l.target_modules_);
    // The stored config of a fine-tuning run loads over finetune_default_config: every key exists.
    training::Config stored = finetune_default_config();
    stored.merge_json(lora.to_json());
    CHECK(stored == lora);
    training::Config bad = lora;
    bad.set("lora_r", 0);
    CHECK_THROWS_WITH_AS(lora_config_of(bad), doctest::Contains("[finetune] char-gpt: the run's LoRA settings"), Error);
  }
}
