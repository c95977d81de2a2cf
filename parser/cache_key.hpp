// Classification cache key: the statement text with literal constants masked, built in one pass.
#pragma once

#include <string>
#include <string_view>

namespace splitpool::parser {

// Builds the key into `out` (its capacity is reused, so a caller keeping one string allocates once).
//
// Numbers and quoted strings ('...', E'...', B'...', X'...', $tag$...$tag$) become one placeholder byte,
// so `... WHERE aid = 12345` and `... WHERE aid = 99` share a key. Everything else is kept byte for byte:
// identifiers (quoted or not), `$1` parameters, operators, whitespace and comments (hints live there).
// The scanner follows PostgreSQL's lexer (standard_conforming_strings = on, as libpg_query parses),
// so two texts share a key only when libpg_query sees the same tokens apart from literal values.
//
// Literals are kept verbatim (key = text) where the classification depends on a constant:
// - the first keyword is not SELECT / INSERT / UPDATE / DELETE / MERGE / WITH / VALUES / TABLE
//   (SET transaction_read_only = 0, SET transaction_isolation = 'serializable', COPY ... TO 'file', gids...);
// - the text names set_config, transaction_read_only, pg_terminate_backend, pg_cancel_backend or
//   splitpool (as an identifier, quoted or not), or contains a "/*+" hint comment.
void cache_key(std::string_view sql, std::string* out);

inline std::string cache_key(std::string_view sql) {
    std::string key;
    cache_key(sql, &key);
    return key;
}

// The placeholder byte that replaces a literal (never valid in SQL text outside a literal).
constexpr char kLiteralMark = '\x01';

}  // namespace splitpool::parser
