#pragma once
/// A training program's configuration: a flat, typed map of key = value.
///
/// Each key has a type fixed when it is first defined (by set(): string, integer, real or
/// boolean). Later changes -- `--set key=value` on the command line (apply), a JSON file
/// (merge_file), a stored config.json (merge_json) -- must name an existing key and give a
/// value of its type; mistakes are focus::Errors that name the key, the bad value and (for
/// unknown keys) the keys that exist.
///
///   training::Config c;
///   c.set("steps", 3000).set("lr", 3e-4).set("dataset", "cmudict").set("bias", false);
///   c.apply("steps=500");          // ok
///   c.apply("steps=0.5");          // error: [config] steps: expected an integer, got '0.5'
///   int64_t steps = c.integer("steps");
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace focus::training {

class Config {
 public:
  /// The type of a key's value.
  enum class Type { String, Integer, Real, Boolean };

  /// Defines key (or overwrites it, changing its type) with a value of the argument's type.
  Config& set(const std::string& key, std::string value);
  Config& set(const std::string& key, const char* value) { return set(key, std::string(value)); }
  Config& set(const std::string& key, double value);
  Config& set(const std::string& key, bool value);
  template <class T>
    requires(std::integral<T> && !std::same_as<T, bool>)
  Config& set(const std::string& key, T value) {
    return set_integer(key, static_cast<int64_t>(value));
  }

  /// Typed getters. A missing key -> focus::Error listing the keys; a value of another type
  /// -> focus::Error naming the key (an integer is also a valid real()).
  std::string str(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double real(const std::string& key) const;
  bool boolean(const std::string& key) const;

  bool contains(const std::string& key) const;
  /// All keys, sorted.
  std::vector<std::string> keys() const;
  /// The type of key (missing -> focus::Error).
  Type type(const std::string& key) const;
  /// The value of key as text ("3000", "0.0003", "true", "cmudict").
  std::string text(const std::string& key) const;

  /// "key=value" (the command line's --set): key must exist; value is parsed as the key's
  /// type (booleans: true/false/1/0/yes/no/on/off; reals accept integers). Errors name
  /// "[config]", the key and the value.
  void apply(const std::string& key_eq_value);
  /// Sets an existing key from text, parsed as its type (as apply).
  void assign(const std::string& key, const std::string& value);

  /// Merges a JSON object file into this config: every key must exist and its value must
  /// have the key's type (JSON numbers for integer/real, true/false for booleans, strings for
  /// strings; a string holding a value of the right type, such as "3e-4", is accepted too).
  /// An unreadable file or bad JSON -> focus::Error naming the file.
  void merge_file(const std::string& path);
  /// merge_file for JSON text; `what` names the source in errors.
  void merge_json(const std::string& json, const std::string& what = "config");

  /// How an old spelling's value becomes the new key's: the old value's text -> the new
  /// key's value text, given the config (for a change of unit, such as epochs to steps).
  using Convert = std::function<std::string(const std::string& old_value, const Config& config)>;
  /// Declares old_key an old spelling of new_key (which must exist): old_key in a --set, a
  /// config file or a stored config.json then sets new_key (converted by convert, if given,
  /// after the other keys of the same file), with a note on stderr. old_key is not a key:
  /// contains(old_key) is false and it is never written.
  Config& rename(const std::string& old_key, const std::string& new_key, Convert convert = {});

  /// A JSON object, keys sorted, values as JSON numbers/booleans/strings.
  std::string to_json() const;
  /// Parses a JSON object; each value's JSON type gives the key's type (a number with a
  /// fraction or exponent is a real). Bad JSON -> focus::Error.
  static Config from_json(const std::string& json);

  /// Equal values (the old spellings are not compared).
  bool operator==(const Config& other) const { return values_ == other.values_; }

 private:
  struct Value {
    Type type = Type::String;
    std::string text;  // canonical text of the value
    bool operator==(const Value&) const = default;
  };
  Config& set_integer(const std::string& key, int64_t value);
  void check_new_key(const std::string& key) const;  // set(): not empty, not an old spelling
  const Value& get(const std::string& key) const;
  struct Renamed {
    std::string new_key;
    Convert convert;
  };
  // The new key and value text of old_key=value (noting the rename on stderr); `what` names
  // the source.
  std::pair<std::string, std::string> renamed(const std::string& old_key, const std::string& value,
                                              const std::string& what) const;
  std::map<std::string, Value> values_;
  std::map<std::string, Renamed> renamed_;  // old spelling -> new key
};

/// "string", "integer", "real", "boolean".
const char* type_name(Config::Type type);

}  // namespace focus::training
