// A pgpool.conf read as pgpool's lexer reads it, line by line, keeping comments for the importer.
#include "tools/pgpool_conf.hpp"

#include <cctype>

namespace splitpool::tools {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// pgpool's LETTER: ASCII letters, '_' and every byte >= 0x80.
bool is_letter(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80); }
bool is_letter_or_digit(char c) { return is_letter(c) || std::isdigit(static_cast<unsigned char>(c)); }

// Reads a '...' value starting at line[i] == '\''; false when the closing quote is missing.
bool read_quoted(std::string_view line, size_t& i, std::string& value) {
    for (++i; i < line.size(); ++i) {
        char c = line[i];
        if (c == '\\' && i + 1 < line.size()) {
            value += c;
            value += line[++i];
        } else if (c == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
            value += '\'';
            ++i;
        } else if (c == '\'') {
            ++i;
            return true;
        } else {
            value += c;
        }
    }
    return false;
}

PgpoolLine read_line(std::string_view line, int number) {
    PgpoolLine out;
    out.number = number;
    out.text = std::string(line);
    size_t i = 0;
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) return out;
    if (line[i] == '#') {
        out.kind = PgpoolLine::Kind::Comment;
        return out;
    }
    auto invalid = [&](std::string error) {
        out.kind = PgpoolLine::Kind::Invalid;
        out.error = std::move(error);
        return out;
    };
    if (!is_letter(line[i])) return invalid("expected a parameter name");
    size_t start = i;
    while (i < line.size() && is_letter_or_digit(line[i])) ++i;
    for (char c : line.substr(start, i - start)) out.key += char(std::tolower(static_cast<unsigned char>(c)));
    while (i < line.size() && is_space(line[i])) ++i;
    if (i < line.size() && line[i] == '=') ++i;
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size() || line[i] == '#') return invalid("missing value for '" + out.key + "'");
    if (line[i] == '\'') {
        out.quoted = true;
        if (!read_quoted(line, i, out.value)) return invalid("unterminated quoted string");
    } else {
        size_t value_start = i;
        while (i < line.size() && !is_space(line[i]) && line[i] != '#' && line[i] != '\'') ++i;
        out.value = std::string(line.substr(value_start, i - value_start));
    }
    while (i < line.size() && is_space(line[i])) ++i;
    if (i < line.size() && line[i] != '#')
        return invalid("unexpected text after the value of '" + out.key + "': " + std::string(line.substr(i)));
    if (i < line.size()) out.comment = std::string(line.substr(i));
    out.kind = PgpoolLine::Kind::Setting;
    return out;
}

}  // namespace

std::vector<PgpoolLine> read_pgpool_conf(std::string_view text) {
    std::vector<PgpoolLine> lines;
    size_t start = 0;
    int number = 1;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        lines.push_back(read_line(text.substr(start, end - start), number++));
        start = end + 1;
    }
    return lines;
}

}  // namespace splitpool::tools
