#include "models/spam/email.h"

#include <algorithm>
#include <cctype>

#include "data/vocab.h"

namespace focus::models::spam {
namespace {

constexpr int kMaxDepth = 8;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

size_t find_ci(std::string_view s, std::string_view needle, size_t from) {
  if (needle.empty()) return from;
  for (size_t i = from; i + needle.size() <= s.size(); ++i)
    if (starts_with_ci(s.substr(i), needle)) return i;
  return std::string_view::npos;
}

// A header line "Name: value": name is printable ASCII without space or colon (RFC 5322 ftext).
bool header_name(std::string_view line, size_t& colon) {
  size_t i = 0;
  while (i < line.size() && line[i] > 32 && line[i] < 127 && line[i] != ':') ++i;
  if (i == 0 || i >= line.size() || line[i] != ':') return false;
  colon = i;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    out += ' ';
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Content-Type "type/subtype; name=value; boundary=\"...\"" -> lower-cased type and parameter.
struct ContentType {
  std::string type;  // "" when absent
  std::string boundary;
};

ContentType parse_content_type(std::string_view value) {
  ContentType ct;
  const size_t semi = value.find(';');
  ct.type = lower(trim(value.substr(0, semi)));
  if (semi == std::string_view::npos) return ct;
  size_t pos = find_ci(value, "boundary=", semi);
  if (pos == std::string_view::npos) return ct;
  pos += 9;
  if (pos < value.size() && value[pos] == '"') {
    const size_t end = value.find('"', pos + 1);
    ct.boundary = std::string(value.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1));
  } else {
    size_t end = pos;
    while (end < value.size() && value[end] != ';' && !std::isspace(static_cast<unsigned char>(value[end]))) ++end;
    ct.boundary = std::string(value.substr(pos, end - pos));
  }
  return ct;
}

bool looks_like_html(std::string_view body) {
  const size_t head = std::min<size_t>(body.size(), 2048);
  const std::string_view start = body.substr(0, head);
  return find_ci(start, "<html", 0) != std::string_view::npos || find_ci(start, "<body", 0) != std::string_view::npos ||
         find_ci(start, "<!doctype html", 0) != std::string_view::npos;
}

std::vector<std::string_view> multipart_parts(std::string_view body, const std::string& boundary) {
  std::vector<std::string_view> parts;
  const std::string delim = "--" + boundary;
  size_t pos = 0;
  size_t part_start = std::string_view::npos;
  while (pos <= body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    const std::string_view line = trim(body.substr(pos, eol - pos));
    if (line.size() >= delim.size() && line.substr(0, delim.size()) == delim) {
      const std::string_view rest = line.substr(delim.size());
      if (rest.empty() || rest == "--") {
        if (part_start != std::string_view::npos) parts.push_back(body.substr(part_start, pos - part_start));
        if (rest == "--") return parts;
        part_start = eol + 1;
      }
    }
    pos = eol + 1;
  }
  if (part_start != std::string_view::npos && part_start < body.size()) parts.push_back(body.substr(part_start));
  return parts;
}

std::string part_text(const EmailParts& part, int depth, std::string_view default_type);

// The text of a single (non-multipart) entity.
std::string leaf_text(const EmailParts& part, const std::string& type) {
  const std::string cte = lower(trim(part.header("content-transfer-encoding")));
  std::string decoded;
  if (cte == "quoted-printable")
    decoded = decode_quoted_printable(part.body);
  else if (cte == "base64")
    decoded = decode_base64(part.body);
  else
    decoded = part.body;
  if (type == "text/html" || (type.empty() && looks_like_html(decoded))) return strip_html(decoded);
  return decoded;
}

std::string part_text(const EmailParts& part, int depth, std::string_view default_type) {
  ContentType ct = parse_content_type(part.header("content-type"));
  if (ct.type.empty()) ct.type = std::string(default_type);
  if (depth < kMaxDepth && ct.type.rfind("multipart/", 0) == 0 && !ct.boundary.empty()) {
    const std::string_view child_default = ct.type == "multipart/digest" ? "message/rfc822" : "";
    std::vector<EmailParts> children;
    for (std::string_view p : multipart_parts(part.body, ct.boundary)) children.push_back(split_headers(p));
    if (ct.type == "multipart/alternative") {
      // Prefer the plain-text rendering; else the first alternative with any text.
      for (const auto& c : children) {
        const std::string t = parse_content_type(c.header("content-type")).type;
        if (t.empty() || t == "text/plain") return part_text(c, depth + 1, "");
      }
      for (const auto& c : children) {
        std::string text = part_text(c, depth + 1, "");
        if (!trim(text).empty()) return text;
      }
      return "";
    }
    std::string out;
    for (const auto& c : children) {
      out += part_text(c, depth + 1, child_default);
      out += '\n';
    }
    return out;
  }
  if (depth < kMaxDepth && ct.type == "message/rfc822") {
    const EmailParts inner = split_headers(part.body);
    std::string out = decode_header_value(inner.header("subject"));
    out += '\n';
    out += part_text(inner, depth + 1, "");
    return out;
  }
  if (ct.type.empty() || ct.type.rfind("text/", 0) == 0 || ct.type.rfind("multipart/", 0) == 0)
    return leaf_text(part, ct.type.rfind("multipart/", 0) == 0 ? std::string() : ct.type);
  // A non-text entity: leave a marker and its type's words, not its bytes.
  std::string marker = " attachment ";
  for (char c : ct.type) marker += (c == '/' || c == '-' || c == '.') ? ' ' : c;
  marker += ' ';
  return marker;
}

}  // namespace

std::string EmailParts::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n.size() == name.size() && starts_with_ci(n, name)) return v;
  return "";
}

EmailParts split_headers(std::string_view raw) {
  EmailParts parts;
  size_t pos = 0;
  // A leading mbox separator "From someone@host  date" (no colon after "From").
  if (raw.substr(0, 5) == "From ") {
    const size_t eol = raw.find('\n');
    pos = eol == std::string_view::npos ? raw.size() : eol + 1;
  }
  bool body_found = false;
  while (pos < raw.size()) {
    size_t eol = raw.find('\n', pos);
    const size_t next = eol == std::string_view::npos ? raw.size() : eol + 1;
    std::string_view line = raw.substr(pos, (eol == std::string_view::npos ? raw.size() : eol) - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // the blank line: the body follows
      pos = next;
      body_found = true;
      break;
    }
    size_t colon = 0;
    if ((line[0] == ' ' || line[0] == '\t') && !parts.headers.empty()) {
      std::string_view more = trim(line);
      if (!more.empty()) {
        std::string& v = parts.headers.back().second;
        if (!v.empty()) v += ' ';
        v += more;
      }
    } else if (header_name(line, colon)) {
      parts.headers.emplace_back(lower(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    } else {
      // Neither header nor continuation: a message without the blank line; the body starts here.
      body_found = true;
      break;
    }
    pos = next;
  }
  if (body_found || parts.headers.empty()) {
    std::string_view rest = pos < raw.size() ? raw.substr(pos) : std::string_view();
    parts.body.reserve(rest.size());
    for (size_t i = 0; i < rest.size(); ++i)
      if (!(rest[i] == '\r' && i + 1 < rest.size() && rest[i + 1] == '\n')) parts.body += rest[i];
  }
  return parts;
}

std::string decode_quoted_printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') {
      out += text[i];
      continue;
    }
    // Soft line break: '=' then optional spaces then (CR)LF.
    size_t j = i + 1;
    while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
    if (j < text.size() && text[j] == '\n') {
      i = j;
      continue;
    }
    if (j >= text.size()) break;  // "=" (+ spaces) at the very end: a soft break
    if (i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += '=';
    }
  }
  return out;
}

std::string decode_base64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string decode_header_value(std::string_view value) {
  std::string out;
  size_t pos = 0;
  bool last_was_encoded = false;
  while (pos < value.size()) {
    const size_t start = value.find("=?", pos);
    if (start == std::string_view::npos) {
      out += value.substr(pos);
      break;
    }
    // =?charset?X?payload?=
    const size_t q1 = value.find('?', start + 2);
    const size_t q2 = q1 == std::string_view::npos ? q1 : value.find('?', q1 + 1);
    const size_t end = q2 == std::string_view::npos ? q2 : value.find("?=", q2 + 1);
    if (end == std::string_view::npos || q2 != q1 + 2) {
      out += value.substr(pos, start + 2 - pos);
      pos = start + 2;
      last_was_encoded = false;
      continue;
    }
    const std::string_view between = value.substr(pos, start - pos);
    // Whitespace between two adjacent encoded words is not part of the text (RFC 2047 6.2).
    if (!(last_was_encoded && trim(between).empty())) out += between;
    const char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
    const std::string_view payload = value.substr(q2 + 1, end - q2 - 1);
    if (enc == 'B') {
      out += decode_base64(payload);
    } else if (enc == 'Q') {
      std::string p(payload);
      std::replace(p.begin(), p.end(), '_', ' ');
      out += decode_quoted_printable(p);
    } else {
      out += value.substr(start, end + 2 - start);
    }
    last_was_encoded = true;
    pos = end + 2;
  }
  return out;
}

std::string strip_html(std::string_view html) {
  std::string out;
  out.reserve(html.size());
  size_t i = 0;
  while (i < html.size()) {
    const char c = html[i];
    if (c == '<') {
      if (html.substr(i, 4) == "<!--") {
        const size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? html.size() : end + 3;
        out += ' ';
        continue;
      }
      const bool script = starts_with_ci(html.substr(i), "<script");
      const bool style = starts_with_ci(html.substr(i), "<style");
      if (script || style) {
        const size_t end = find_ci(html, script ? "</script" : "</style", i + 1);
        if (end == std::string_view::npos) break;
        i = end;  // the closing tag is skipped as a tag below
        continue;
      }
      // A tag needs a letter, '/' or '!' after '<'; otherwise '<' is text ("a < b").
      if (i + 1 < html.size() && (std::isalpha(static_cast<unsigned char>(html[i + 1])) || html[i + 1] == '/' ||
                                  html[i + 1] == '!' || html[i + 1] == '?')) {
        const size_t end = html.find('>', i + 1);
        i = end == std::string_view::npos ? html.size() : end + 1;
        out += ' ';
        continue;
      }
      out += c;
      ++i;
      continue;
    }
    if (c == '&') {
      const size_t semi = html.find(';', i + 1);
      if (semi != std::string_view::npos && semi - i <= 10) {
        const std::string name = lower(html.substr(i + 1, semi - i - 1));
        uint32_t cp = 0;
        bool ok = true;
        if (!name.empty() && name[0] == '#') {
          const bool hex = name.size() > 1 && name[1] == 'x';
          const std::string digits = name.substr(hex ? 2 : 1);
          ok = !digits.empty();
          for (char d : digits) {
            const int v = hex ? hex_value(d) : (std::isdigit(static_cast<unsigned char>(d)) ? d - '0' : -1);
            if (v < 0 || cp > 0x10FFFF) {
              ok = false;
              break;
            }
            cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
          }
        } else if (name == "nbsp") {
          cp = ' ';
        } else if (name == "amp") {
          cp = '&';
        } else if (name == "lt") {
          cp = '<';
        } else if (name == "gt") {
          cp = '>';
        } else if (name == "quot") {
          cp = '"';
        } else if (name == "apos") {
          cp = '\'';
        } else if (name == "copy") {
          cp = 0xA9;
        } else if (name == "reg") {
          cp = 0xAE;
        } else {
          ok = false;
        }
        if (ok) {
          append_utf8(out, cp);
          i = semi + 1;
          continue;
        }
      }
    }
    out += c;
    ++i;
  }
  return out;
}

std::string email_text(std::string_view raw) {
  const EmailParts parts = split_headers(raw);
  std::string text;
  if (!parts.headers.empty()) {
    text += "Subject: " + decode_header_value(parts.header("subject")) + "\n";
    text += "From: " + decode_header_value(parts.header("from")) + "\n";
  }
  text += part_text(parts, 0, "");
  return data::sanitize_utf8(text);
}

std::vector<std::string> email_words(std::string_view raw) {
  std::vector<std::string> words = data::split_words(email_text(raw), /*lowercase=*/true);
  std::erase_if(words, [](const std::string& w) {
    if (w.size() > kMaxWordBytes) return true;
    if (w.size() == 1 && !std::isalnum(static_cast<unsigned char>(w[0])) && static_cast<unsigned char>(w[0]) < 128)
      return w != "!" && w != "$";
    return false;
  });
  return words;
}

}  // namespace focus::models::spam
