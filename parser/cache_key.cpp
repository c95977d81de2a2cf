// One-pass literal-masking scanner for the classification cache key (mirrors PostgreSQL's scan.l).
#include "parser/cache_key.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace splitpool::parser {

namespace {

constexpr char kNormalized = 'N';  // key prefix: literals masked
constexpr char kVerbatim = 'V';    // key prefix: the text as is
constexpr char kEscape = '\x02';   // precedes a raw \x01 / \x02 byte of the text, so no text forges a mark

// Character classes, one table lookup each: the scanner runs on every statement of the hot path.
enum : uint8_t { kIdentStart = 1, kDigit = 2, kDollar = 4, kPlain = 8 };

constexpr std::array<uint8_t, 256> make_classes() {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        int l = c | 0x20;
        if ((l >= 'a' && l <= 'z') || c == '_' || c >= 0x80) t[size_t(c)] = kIdentStart;
        else if (c >= '0' && c <= '9') t[size_t(c)] = kDigit;
        else if (c == '$') t[size_t(c)] = kDollar;
        // What step() copies alone whatever follows it (whitespace, most operators, commas).
        else if (c != '-' && c != '/' && c != '\'' && c != '"' && c != '.') t[size_t(c)] = kPlain;
    }
    return t;
}
constexpr std::array<uint8_t, 256> kClasses = make_classes();

uint8_t char_class(unsigned char c) { return kClasses[c]; }
bool ident_start(unsigned char c) { return char_class(c) == kIdentStart; }
bool is_digit(unsigned char c) { return char_class(c) == kDigit; }
bool ident_cont(unsigned char c) { return char_class(c) & (kIdentStart | kDigit | kDollar); }
bool dolq_cont(unsigned char c) { return char_class(c) & (kIdentStart | kDigit); }

// Case-insensitive equality of an identifier with a lowercase word.
bool ident_is(std::string_view ident, std::string_view lower_word) {
    if (ident.size() != lower_word.size()) return false;
    for (size_t i = 0; i < ident.size(); ++i) {
        auto c = static_cast<unsigned char>(ident[i]);
        if ((c >= 'A' && c <= 'Z' ? c | 0x20 : c) != static_cast<unsigned char>(lower_word[i])) return false;
    }
    return true;
}

// Identifiers whose presence makes a constant matter to the classification or the route.
bool is_sensitive_ident(std::string_view ident) {
    static constexpr std::array<std::string_view, 5> kWords = {
        "set_config", "transaction_read_only", "pg_terminate_backend", "pg_cancel_backend", "splitpool"};
    if (ident.size() < 9) return false;
    for (std::string_view w : kWords)
        if (ident_is(ident, w)) return true;
    return false;
}

// Statements whose literals are data: everything else keeps them.
bool is_data_statement(std::string_view word) {
    static constexpr std::array<std::string_view, 8> kWords = {"select", "insert", "update", "delete",
                                                               "merge",  "with",   "values", "table"};
    for (std::string_view w : kWords)
        if (ident_is(word, w)) return true;
    return false;
}

class Scanner {
public:
    // Writes the key from `out` on; the caller gives room for the worst case (every byte escaped).
    Scanner(std::string_view sql, char* out) : s_(sql), w_(out) {}

    // Returns false when the text must be kept verbatim.
    bool run() {
        while (i_ < s_.size()) {
            if (!step()) return false;
        }
        return true;
    }

    const char* end() const { return w_; }

private:
    std::string_view s_;
    char* w_;  // the next byte of the key
    size_t i_ = 0;
    bool first_word_seen_ = false;

    char at(size_t k) const { return k < s_.size() ? s_[k] : '\0'; }

    void copy_to(size_t end) {
        for (size_t k = i_; k < end; ++k) {
            char c = s_[k];
            if (c == kLiteralMark || c == kEscape) *w_++ = kEscape;
            *w_++ = c;
        }
        i_ = end;
    }

    void mask_to(size_t end) {
        *w_++ = kLiteralMark;
        i_ = end;
    }

    bool step() {
        auto c = static_cast<unsigned char>(s_[i_]);
        char n = at(i_ + 1);
        if (c == '-' && n == '-') return copy_line_comment(), true;
        if (c == '/' && n == '*') return copy_block_comment();
        if (c == '\'') return mask_to(end_of_quoted(i_ + 1, false, true)), true;
        if (c == '"') return copy_to(end_of_quoted(i_ + 1, false, true, '"')), true;
        if (c == '$') return dollar();
        if (c == '.' && n == '.') return copy_to(i_ + 2), true;  // DOT_DOT, never the start of ".5"
        if (is_digit(c) || (c == '.' && is_digit(static_cast<unsigned char>(n)))) return mask_to(end_of_number()), true;
        if (ident_start(c)) return identifier();
        size_t k = i_ + 1;  // the run of characters that start no token of interest, in one copy
        while (k < s_.size() && char_class(static_cast<unsigned char>(s_[k])) == kPlain) ++k;
        copy_to(k);
        return true;
    }

    void copy_line_comment() {
        size_t end = s_.find('\n', i_);
        copy_to(end == std::string_view::npos ? s_.size() : end);
    }

    // Block comments nest in PostgreSQL. A "/*+" comment is a hint: keep the whole text verbatim.
    bool copy_block_comment() {
        if (at(i_ + 2) == '+') return false;
        size_t k = i_ + 2;
        int depth = 1;
        while (k < s_.size() && depth > 0) {
            if (s_[k] == '/' && at(k + 1) == '*') depth++, k += 2;
            else if (s_[k] == '*' && at(k + 1) == '/') depth--, k += 2;
            else ++k;
        }
        copy_to(k);
        return true;
    }

    // Index just past the closing quote. `backslash`: E'' strings escape with \; `doubling`: '' or "" continue.
    size_t end_of_quoted(size_t k, bool backslash, bool doubling, char quote = '\'') const {
        while (k < s_.size()) {
            char c = s_[k];
            if (backslash && c == '\\') {
                k += 2;
            } else if (c == quote) {
                if (doubling && at(k + 1) == quote) k += 2;
                else return k + 1;
            } else {
                ++k;
            }
        }
        return s_.size();
    }

    size_t end_of_number() const {
        size_t k = i_;
        while (is_digit(static_cast<unsigned char>(at(k)))) ++k;
        // "1..2" is an integer followed by "..", as in scan.l's numericfail rule.
        if (at(k) == '.' && at(k + 1) != '.') {
            ++k;
            while (is_digit(static_cast<unsigned char>(at(k)))) ++k;
        }
        char e = at(k);
        if (e == 'e' || e == 'E') {
            size_t d = k + 1;
            if (at(d) == '+' || at(d) == '-') ++d;
            if (is_digit(static_cast<unsigned char>(at(d)))) {
                k = d;
                while (is_digit(static_cast<unsigned char>(at(k)))) ++k;
            }
        }
        return k;
    }

    // $1 parameter (kept), $tag$...$tag$ string (masked), or a lone '$'.
    bool dollar() {
        size_t k = i_ + 1;
        if (is_digit(static_cast<unsigned char>(at(k)))) {
            while (is_digit(static_cast<unsigned char>(at(k)))) ++k;
            copy_to(k);
            return true;
        }
        if (ident_start(static_cast<unsigned char>(at(k))) || at(k) == '$') {
            while (k < s_.size() && s_[k] != '$' && dolq_cont(static_cast<unsigned char>(s_[k]))) ++k;
            if (at(k) == '$') {
                std::string_view delim = s_.substr(i_, k + 1 - i_);
                size_t close = s_.find(delim, k + 1);
                mask_to(close == std::string_view::npos ? s_.size() : close + delim.size());
                return true;
            }
        }
        copy_to(i_ + 1);
        return true;
    }

    bool identifier() {
        char c = s_[i_];
        char lc = static_cast<char>(c | 0x20);
        if (at(i_ + 1) == '\'') {
            if (lc == 'e') return mask_to(end_of_quoted(i_ + 2, true, true)), true;
            if (lc == 'b' || lc == 'x') return mask_to(end_of_quoted(i_ + 2, false, false)), true;
            if (lc == 'n') return mask_to(end_of_quoted(i_ + 2, false, true)), true;
        }
        size_t k = i_ + 1;
        while (k < s_.size() && ident_cont(static_cast<unsigned char>(s_[k]))) ++k;
        std::string_view word = s_.substr(i_, k - i_);
        if (!first_word_seen_) {
            first_word_seen_ = true;
            if (!is_data_statement(word)) return false;
        }
        if (is_sensitive_ident(word)) return false;
        std::memcpy(w_, word.data(), word.size());  // identifier bytes are never marks: no escapes
        w_ += word.size();
        i_ = k;
        return true;
    }
};

// Quoted identifiers can name a sensitive function too: "set_config"(...). Rare, so checked apart.
bool has_sensitive_quoted_ident(std::string_view sql) {
    for (size_t q = sql.find('"'); q != std::string_view::npos; q = sql.find('"', q + 1)) {
        size_t end = sql.find('"', q + 1);
        if (end == std::string_view::npos) return false;
        if (is_sensitive_ident(sql.substr(q + 1, end - q - 1))) return true;
        q = end;
    }
    return false;
}

}  // namespace

void cache_key(std::string_view sql, std::string* out) {
    // Written through a pointer into a buffer sized for the worst case: the key is built once per
    // statement on the hot path, and per-byte push_back was most of its cost.
    out->resize(2 * sql.size() + 1);
    (*out)[0] = kNormalized;
    Scanner scanner(sql, out->data() + 1);
    bool normalized = scanner.run();
    if (normalized && sql.find('"') != std::string_view::npos && has_sensitive_quoted_ident(sql)) normalized = false;
    if (!normalized) {
        out->assign(1, kVerbatim);
        out->append(sql);
        return;
    }
    out->resize(size_t(scanner.end() - out->data()));
}

}  // namespace splitpool::parser
