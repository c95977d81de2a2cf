// A pgpool.conf read as pgpool's lexer reads it, line by line, keeping comments for the importer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace splitpool::tools {

struct PgpoolLine {
    enum class Kind { Blank, Comment, Setting, Invalid };
    Kind kind = Kind::Blank;
    int number = 0;        // 1-based line number in the file
    std::string text;      // the line as written (without the newline)
    std::string key;       // Setting: the parameter name, lower-cased
    std::string value;     // Setting: the value, quotes removed
    bool quoted = false;   // Setting: the value was a '...' string
    std::string comment;   // Setting: a trailing "# ..." comment, "" if none
    std::string error;     // Invalid: what is wrong
};

// Splits pgpool.conf text into lines. pgpool's syntax: `name = value` or `name value`; a value is
// a '...' string (kept verbatim, as pgpool does: a backslash escapes the next character but stays
// in the value; '' is taken as one quote, as PostgreSQL does) or an unquoted word such as on, 5min,
// 10MB, 0x1F; "#" starts a comment anywhere outside quotes.
std::vector<PgpoolLine> read_pgpool_conf(std::string_view text);

}  // namespace splitpool::tools
