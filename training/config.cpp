// training/config.h: a flat, typed key = value configuration.
#include "training/config.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <tuple>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/vocab.h"  // is_valid_utf8

namespace focus::training {
namespace {

using json = nlohmann::json;

std::string real_text(double v) {
  std::string s = fmt::format("{}", v);  // shortest round-trip form
  return s;
}

bool parse_integer(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, *out);
  return ec == std::errc() && p == e;
}

bool parse_real(const std::string& s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_boolean(const std::string& s, bool* out) {
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "1" || l == "yes" || l == "on") {
    *out = true;
    return true;
  }
  if (l == "false" || l == "0" || l == "no" || l == "off") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace

const char* type_name(Config::Type type) {
  switch (type) {
    case Config::Type::String: return "string";
    case Config::Type::Integer: return "integer";
    case Config::Type::Real: return "real";
    case Config::Type::Boolean: return "boolean";
  }
  return "?";
}

void Config::check_new_key(const std::string& key) const {
  FOCUS_CHECK(!key.empty(), "[config] empty key");
  const auto old = renamed_.find(key);
  FOCUS_CHECK(old == renamed_.end(), "[config] set {}: '{}' is the old spelling of '{}'", key, key,
              old == renamed_.end() ? std::string() : old->second.new_key);
}

Config& Config::set(const std::string& key, std::string value) {
  check_new_key(key);
  FOCUS_CHECK(data::is_valid_utf8(key) && data::is_valid_utf8(value), "[config] {}: not valid UTF-8", key);
  values_[key] = Value{Type::String, std::move(value)};
  return *this;
}

Config& Config::set(const std::string& key, double value) {
  check_new_key(key);
  FOCUS_CHECK(std::isfinite(value), "[config] {}: value must be finite, got {}", key, value);
  values_[key] = Value{Type::Real, real_text(value)};
  return *this;
}

Config& Config::set(const std::string& key, bool value) {
  check_new_key(key);
  values_[key] = Value{Type::Boolean, value ? "true" : "false"};
  return *this;
}

Config& Config::set_integer(const std::string& key, int64_t value) {
  check_new_key(key);
  values_[key] = Value{Type::Integer, std::to_string(value)};
  return *this;
}

const Config::Value& Config::get(const std::string& key) const {
  auto it = values_.find(key);
  FOCUS_CHECK(it != values_.end(), "[config] unknown key '{}'; the keys are: {}", key, fmt::join(keys(), ", "));
  return it->second;
}

std::string Config::str(const std::string& key) const {
  const Value& v = get(key);
  FOCUS_CHECK(v.type == Type::String, "[config] {} is a {} ({}), not a string", key, type_name(v.type), v.text);
  return v.text;
}

int64_t Config::integer(const std::string& key) const {
  const Value& v = get(key);
  FOCUS_CHECK(v.type == Type::Integer, "[config] {} is a {} ({}), not an integer", key, type_name(v.type), v.text);
  int64_t out = 0;
  parse_integer(v.text, &out);
  return out;
}

double Config::real(const std::string& key) const {
  const Value& v = get(key);
  FOCUS_CHECK(v.type == Type::Real || v.type == Type::Integer, "[config] {} is a {} ({}), not a number", key,
              type_name(v.type), v.text);
  double out = 0;
  parse_real(v.text, &out);
  return out;
}

bool Config::boolean(const std::string& key) const {
  const Value& v = get(key);
  FOCUS_CHECK(v.type == Type::Boolean, "[config] {} is a {} ({}), not a boolean", key, type_name(v.type), v.text);
  return v.text == "true";
}

bool Config::contains(const std::string& key) const { return values_.count(key) != 0; }

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_) out.push_back(k);
  return out;
}

Config::Type Config::type(const std::string& key) const { return get(key).type; }

std::string Config::text(const std::string& key) const { return get(key).text; }

void Config::assign(const std::string& key, const std::string& value) {
  Value& v = const_cast<Value&>(get(key));
  switch (v.type) {
    case Type::String:
      // Written to config.json and the checkpoint's metadata, which are JSON: UTF-8 only
      // (`--set dataset=$'\xff'` would otherwise fail only when the run writes them).
      FOCUS_CHECK(data::is_valid_utf8(value), "[config] {}: the value is not valid UTF-8", key);
      v.text = value;
      return;
    case Type::Integer: {
      int64_t i = 0;
      FOCUS_CHECK(parse_integer(value, &i), "[config] {}: expected an integer, got '{}'", key, value);
      v.text = std::to_string(i);
      return;
    }
    case Type::Real: {
      double d = 0;
      FOCUS_CHECK(parse_real(value, &d), "[config] {}: expected a number, got '{}'", key, value);
      v.text = real_text(d);
      return;
    }
    case Type::Boolean: {
      bool b = false;
      FOCUS_CHECK(parse_boolean(value, &b), "[config] {}: expected true or false, got '{}'", key, value);
      v.text = b ? "true" : "false";
      return;
    }
  }
}

Config& Config::rename(const std::string& old_key, const std::string& new_key, Convert convert) {
  FOCUS_CHECK(contains(new_key), "[config] rename {} -> {}: no key '{}'", old_key, new_key, new_key);
  FOCUS_CHECK(!contains(old_key) && old_key != new_key, "[config] rename {} -> {}: '{}' is a key", old_key, new_key,
              old_key);
  renamed_[old_key] = Renamed{new_key, std::move(convert)};
  return *this;
}

std::pair<std::string, std::string> Config::renamed(const std::string& old_key, const std::string& value,
                                                    const std::string& what) const {
  const Renamed& r = renamed_.at(old_key);
  std::string converted = value;
  if (r.convert) {
    try {
      converted = r.convert(value, *this);
    } catch (const Error& e) {
      FOCUS_FAIL("[config] {}: {} (the old spelling of {}): {}", what, old_key, r.new_key, e.what());
    }
  }
  std::cerr << fmt::format("[config] note: {}: '{}' is now called '{}'{}\n", what, old_key, r.new_key,
                           converted == value ? std::string()
                                              : fmt::format(" ({}={} is {}={})", old_key, value, r.new_key, converted));
  return {r.new_key, converted};
}

void Config::apply(const std::string& key_eq_value) {
  auto eq = key_eq_value.find('=');
  FOCUS_CHECK(eq != std::string::npos && eq > 0, "[config] --set expects key=value, got '{}'", key_eq_value);
  std::string key = key_eq_value.substr(0, eq);
  std::string value = key_eq_value.substr(eq + 1);
  if (!contains(key) && renamed_.count(key)) std::tie(key, value) = renamed(key, value, "--set");
  FOCUS_CHECK(contains(key), "[config] --set {}: unknown key '{}'; the keys are: {}", key_eq_value, key,
              fmt::join(keys(), ", "));
  assign(key, value);
}

void Config::merge_json(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    FOCUS_FAIL("[config] {}: not valid JSON: {}", what, e.what());
  }
  FOCUS_CHECK(j.is_object(), "[config] {}: expected a JSON object of key: value, got a {}", what, j.type_name());
  // Check everything first so that a bad file changes nothing.
  Config next = *this;
  std::vector<std::pair<std::string, std::string>> old_spellings;  // converted after the other keys
  for (const auto& [key, value] : j.items()) {
    if (!contains(key) && renamed_.count(key)) {
      const std::string& new_key = renamed_.at(key).new_key;
      FOCUS_CHECK(!j.contains(new_key), "[config] {}: both '{}' and its new name '{}'", what, key, new_key);
      FOCUS_CHECK(value.is_string() || value.is_number() || value.is_boolean(),
                  "[config] {}: {} must be a string, number or boolean, got {}", what, key, value.dump());
      old_spellings.emplace_back(key, value.is_string()           ? value.get<std::string>()
                                      : value.is_boolean()        ? (value.get<bool>() ? "true" : "false")
                                      : value.is_number_integer() ? value.dump()
                                                                  : real_text(value.get<double>()));
      continue;
    }
    FOCUS_CHECK(contains(key), "[config] {}: unknown key '{}'; the keys are: {}", what, key, fmt::join(keys(), ", "));
    Type t = type(key);
    std::string text_value;
    if (value.is_string()) {
      text_value = value.get<std::string>();
    } else if (value.is_boolean()) {
      FOCUS_CHECK(t == Type::Boolean, "[config] {}: {} is a {}, got {}", what, key, type_name(t), value.dump());
      text_value = value.get<bool>() ? "true" : "false";
    } else if (value.is_number_integer()) {
      FOCUS_CHECK(t == Type::Integer || t == Type::Real, "[config] {}: {} is a {}, got {}", what, key, type_name(t),
                  value.dump());
      text_value = value.dump();
    } else if (value.is_number_float()) {
      FOCUS_CHECK(t == Type::Real, "[config] {}: {} is a {}, got {}", what, key, type_name(t), value.dump());
      text_value = real_text(value.get<double>());
    } else {
      FOCUS_FAIL("[config] {}: {} must be a string, number or boolean, got {}", what, key, value.dump());
    }
    try {
      next.assign(key, text_value);
    } catch (const Error& e) {
      FOCUS_FAIL("[config] {}: {}", what, std::string(e.what()).substr(9));
    }
  }
  for (const auto& [old_key, text_value] : old_spellings) {
    const auto [key, converted] = next.renamed(old_key, text_value, what);
    try {
      next.assign(key, converted);
    } catch (const Error& e) {
      FOCUS_FAIL("[config] {}: {}", what, std::string(e.what()).substr(9));
    }
  }
  *this = std::move(next);
}

void Config::merge_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in.good(), "[config] cannot read config file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  merge_json(ss.str(), path);
}

std::string Config::to_json() const {
  json j = json::object();
  for (const auto& [key, v] : values_) {
    switch (v.type) {
      case Type::String: j[key] = v.text; break;
      case Type::Integer: j[key] = integer(key); break;
      case Type::Real: j[key] = real(key); break;
      case Type::Boolean: j[key] = v.text == "true"; break;
    }
  }
  return j.dump(2);
}

Config Config::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    FOCUS_FAIL("[config] not valid JSON: {}", e.what());
  }
  FOCUS_CHECK(j.is_object(), "[config] expected a JSON object, got a {}", j.type_name());
  Config c;
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) {
      c.set(key, value.get<std::string>());
    } else if (value.is_boolean()) {
      c.set(key, value.get<bool>());
    } else if (value.is_number_integer()) {
      c.set(key, value.get<int64_t>());
    } else if (value.is_number_float()) {
      c.set(key, value.get<double>());
    } else {
      FOCUS_FAIL("[config] {} must be a string, number or boolean, got {}", key, value.dump());
    }
  }
  return c;
}

}  // namespace focus::training
