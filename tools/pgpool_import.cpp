// `splitpool import-pgpool-conf`: a pgpool.conf converted into splitpool's TOML, with every
// parameter that is not carried over listed with the reason.
#include "tools/pgpool_import.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "daemon/config.hpp"
#include "tools/pgpool_conf.hpp"
#include "tools/pgpool_params.hpp"

namespace splitpool::tools {
namespace {

using daemon::RawValue;
using Level = ImportDiagnostic::Level;

constexpr int kMaxBackends = 128;   // pgpool's MAX_NUM_BACKENDS
constexpr std::string_view kCheckName = "import";   // the TOML's name in parse_config's messages

// ---------------------------------------------------------------- values

std::optional<int64_t> parse_integer(std::string_view s) {
    bool negative = !s.empty() && s[0] == '-';
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
    if (s.empty() || s.size() > 15) return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
        int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : base == 16 && std::isxdigit(static_cast<unsigned char>(c))
                        ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                        : -1;
        if (digit < 0) return std::nullopt;
        v = v * base + digit;
    }
    return negative ? -v : v;
}

std::optional<double> parse_number(std::string_view s) {
    if (auto i = parse_integer(s)) return double(*i);
    std::string text(s);
    char* end = nullptr;
    errno = 0;
    double v = strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno != 0) return std::nullopt;
    return v;
}

RawValue string_value(std::string_view s) {
    RawValue v;
    v.type = RawValue::Type::String;
    v.text = std::string(s);
    return v;
}

RawValue integer_value(int64_t i) {
    RawValue v;
    v.type = RawValue::Type::Integer;
    v.integer = i;
    return v;
}

RawValue number_value(double d) {
    RawValue v;
    v.type = RawValue::Type::Float;
    v.number = d;
    return v;
}

// The TOML spellings to try for a value, best first, by the key's type in the key table.
std::vector<RawValue> candidates(std::string_view type, const std::string& value) {
    std::optional<int64_t> integer = parse_integer(value);
    if (type == "bool") {
        std::string word = normalized_value(value);
        if (word != "on" && word != "off") return {string_value(value)};
        RawValue v;
        v.type = RawValue::Type::Boolean;
        v.boolean = word == "on";
        return {v};
    }
    if (type == "int" || type == "time") return {integer ? integer_value(*integer) : string_value(value)};
    if (type == "float") {
        std::optional<double> d = parse_number(value);
        return {d ? number_value(*d) : string_value(value)};
    }
    if (type == "enum") {   // pgpool reads enum words case-insensitively (WARNING, Transaction)
        std::string lowered;
        for (char c : value) lowered += char(std::tolower(static_cast<unsigned char>(c)));
        if (lowered != value) return {string_value(value), string_value(lowered)};
        return {string_value(value)};
    }
    if (type == "string" || type == "path" || type == "list") return {string_value(value)};
    if (integer) return {integer_value(*integer), string_value(value)};   // a kind added later
    return {string_value(value)};
}

// The length of the valid UTF-8 character at s[i] (no overlong forms, surrogates or code points
// past U+10FFFF, which TOML parsers refuse), 0 if there is none.
size_t utf8_length(std::string_view s, size_t i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len <= 1) return len;
    if (i + len > s.size()) return 0;
    uint32_t cp = c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc >> 6) != 2) return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    return overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ? 0 : len;
}

// Valid UTF-8 without control characters (TOML's rule for comments and strings); others become '?'.
std::string sanitized(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len = utf8_length(s, i);
        bool ok = len > 0;
        if (ok && len == 1 && ((c < 0x20 && c != '\t') || c == 0x7f)) ok = false;
        if (!ok) {
            out += '?';
            ++i;
            continue;
        }
        out.append(s.substr(i, len));
        i += len;
    }
    return out;
}

// Each line sanitized, the line breaks kept: the output is valid TOML text even where a summary
// quotes a parameter name as the input spelled it.
std::string sanitized_lines(std::string_view text) {
    std::string out;
    for (size_t at = 0; at < text.size();) {
        size_t end = std::min(text.find('\n', at), text.size());
        out += sanitized(text.substr(at, end - at));
        if (end < text.size()) out += '\n';
        at = end + 1;
    }
    return out;
}

std::string toml_string(std::string_view s) {
    bool literal_ok = s.find('\'') == std::string_view::npos && sanitized(s) == s;
    if (literal_ok && s.find('\\') != std::string_view::npos) return "'" + std::string(s) + "'";  // regexes read better
    std::string out = "\"";
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') out += std::string("\\") + c;
        else if (c == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04X", u);
            out += buf;
        } else out += c;
    }
    return out + "\"";
}

std::string toml_value(const RawValue& v) {
    switch (v.type) {
    case RawValue::Type::Boolean: return v.boolean ? "true" : "false";
    case RawValue::Type::Integer: return std::to_string(v.integer);
    case RawValue::Type::Float: {
        char buf[40];
        snprintf(buf, sizeof buf, "%.17g", v.number);
        std::string text = buf;
        if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
        return text;
    }
    case RawValue::Type::Array: {
        std::string out = "[";
        for (const RawValue& item : v.items) out += (out.size() > 1 ? ", " : "") + toml_value(item);
        return out + "]";
    }
    default: return toml_string(v.text);
    }
}

std::string trimmed(std::string_view s) {
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    return std::string(s.substr(b, s.find_last_not_of(" \t") - b + 1));
}

const char* level_word(Level level) {
    switch (level) {
    case Level::Error: return "error";
    case Level::Unsupported: return "NOT SUPPORTED";
    case Level::Ignored: return "ignored";
    case Level::Note: return "note";
    }
    return "";
}

// "key: NOT SUPPORTED: reason"
std::string diagnostic_body(const ImportDiagnostic& d) {
    return (d.key.empty() ? "" : d.key + ": ") + level_word(d.level) + ": " + d.message;
}

// ---------------------------------------------------------------- names

const daemon::KeyInfo* find_key(std::string_view name) {
    for (const daemon::KeyInfo& k : daemon::config_keys())
        if (k.name == name) return &k;
    return nullptr;
}

bool is_backend_key(std::string_view field) {
    const auto& names = daemon::backend_key_names();
    return std::find(names.begin(), names.end(), field) != names.end();
}

struct NodeKey {
    std::string field;
    int node = 0;
    bool too_large = false;
};

// backend_hostname0 → {hostname, 0}; a per-node health check key (health_check_period0) too when
// splitpool's [[backend]] has that key. nullopt for every other name.
std::optional<NodeKey> node_key(std::string_view key) {
    size_t digits = key.size();
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(key[digits - 1]))) --digits;
    if (digits == key.size() || digits == 0) return std::nullopt;
    std::string_view stem = key.substr(0, digits), number = key.substr(digits);
    std::string field;
    if (stem.substr(0, 8) == "backend_" && is_backend_key(stem.substr(8))) field = std::string(stem.substr(8));
    else if ((stem.substr(0, 13) == "health_check_" || stem == "connect_timeout") && is_backend_key(stem))
        field = std::string(stem);
    else return std::nullopt;
    NodeKey out{field, 0, number.size() > 3};
    if (!out.too_large) out.node = std::stoi(std::string(number));
    out.too_large = out.too_large || out.node >= kMaxBackends;
    return out;
}

// The values to try for a [[backend]] key.
std::vector<RawValue> backend_candidates(std::string_view field, std::string value) {
    if (field == "flag") {
        RawValue array;
        array.type = RawValue::Type::Array;
        std::stringstream words(value);
        for (std::string word; std::getline(words, word, '|');) {
            word = trimmed(word);
            if (word == "ALWAYS_MASTER") word = "ALWAYS_PRIMARY";   // pgpool 4.0/4.1 spelling
            if (!word.empty()) array.items.push_back(string_value(word));
        }
        return {array};
    }
    if (field == "port") return candidates("int", value);
    if (field == "weight") return candidates(parse_integer(value) ? "int" : "float", value);
    if (field == "hostname" || field == "application_name" || field == "data_directory") return {string_value(value)};
    return candidates("", value);
}

// ---------------------------------------------------------------- the conversion

class Importer {
public:
    explicit Importer(const ImportOptions& options) : options_(options) {}
    ImportResult run(std::string_view text);

private:
    struct BackendValue {
        std::string field;
        RawValue value;
        int line;
        std::string comment;
    };

    void first_pass();
    void line(const PgpoolLine& l);
    void setting(const PgpoolLine& l);
    void key_setting(const PgpoolLine& l, const daemon::KeyInfo& key, std::string_view old_name);
    void backend_setting(const PgpoolLine& l, const NodeKey& nk);
    void unsupported_setting(const PgpoolLine& l, const UnsupportedParam& p);
    void backends();
    void final_notes();
    void final_check();
    std::string header() const;
    bool gate_open(std::string_view gate) const;

    void emit(std::string text, int source_line) { body_.push_back({std::move(text), source_line}); }
    void add(Level level, int line, std::string key, std::string message) {
        diagnostics_.push_back({level, line, std::move(key), std::move(message)});
    }
    bool has_errors() const {
        return std::any_of(diagnostics_.begin(), diagnostics_.end(), [](auto& d) { return d.level == Level::Error; });
    }

    ImportOptions options_;
    std::vector<PgpoolLine> lines_;
    std::map<std::string, int> last_line_;          // effective name → line of its last occurrence
    std::map<std::string, std::string> values_;     // effective name → its last value
    std::vector<std::pair<std::string, int>> body_; // output lines and the pgpool.conf line of each
    std::vector<std::pair<std::string, int>> tail_; // the [[backend]] tables
    std::map<int, std::vector<BackendValue>> nodes_;
    daemon::Config scratch_;                        // every converted value is stored here to validate it
    std::vector<ImportDiagnostic> diagnostics_;
    int converted_ = 0;
};

std::string effective_name(const std::string& key) {
    std::string_view renamed = renamed_key(key);
    return renamed.empty() ? key : std::string(renamed);
}

void Importer::first_pass() {
    for (const PgpoolLine& l : lines_) {
        if (l.kind != PgpoolLine::Kind::Setting) continue;
        std::string name = effective_name(l.key);
        last_line_[name] = l.number;
        values_[name] = l.value;
    }
}

bool Importer::gate_open(std::string_view gate) const {
    if (gate.empty()) return true;
    if (gate == kGateNever) return false;
    auto it = values_.find(std::string(gate));
    if (it == values_.end()) return false;   // every gate is off / empty by default in pgpool
    std::string v = normalized_value(it->second);
    return v != "off" && !v.empty();
}

void Importer::line(const PgpoolLine& l) {
    switch (l.kind) {
    case PgpoolLine::Kind::Blank: emit("", l.number); break;
    case PgpoolLine::Kind::Comment: emit(sanitized(l.text), l.number); break;
    case PgpoolLine::Kind::Invalid: add(Level::Error, l.number, l.key, "syntax error: " + l.error); break;
    case PgpoolLine::Kind::Setting: setting(l); break;
    }
}

void Importer::setting(const PgpoolLine& l) {
    std::string name = effective_name(l.key);
    if (last_line_[name] != l.number) {
        emit("# overridden by line " + std::to_string(last_line_[name]) + ": " + sanitized(l.text), l.number);
        return;
    }
    if (const daemon::KeyInfo* key = find_key(name)) return key_setting(l, *key, name == l.key ? "" : l.key);
    if (std::optional<NodeKey> nk = node_key(name)) return backend_setting(l, *nk);
    if (std::optional<UnsupportedParam> p = find_unsupported(name)) return unsupported_setting(l, *p);
    emit("# UNKNOWN to splitpool, not converted: " + sanitized(l.text), l.number);
    add(Level::Unsupported, l.number, l.key, "not a pgpool parameter splitpool knows");
}

void Importer::key_setting(const PgpoolLine& l, const daemon::KeyInfo& key, std::string_view old_name) {
    std::string value = l.value, note;
    namespace fs = std::filesystem;
    if (key.type == "path" && !value.empty() && !options_.source_dir.empty() && !fs::path(value).is_absolute()) {
        note = "# " + sanitized(value) + " was relative to the folder of " + sanitized(options_.source_name);
        value = (fs::path(options_.source_dir) / value).lexically_normal().string();
    }
    std::string problem;
    for (const RawValue& candidate : candidates(key.type, value)) {
        std::string p = daemon::config_store(scratch_, key.name, candidate);
        if (p.empty()) {
            if (!old_name.empty())
                emit("# renamed: pgpool's " + std::string(old_name) + " is " + std::string(key.name), l.number);
            if (!note.empty()) emit(note, l.number);
            std::string comment = l.comment.empty() ? "" : "  " + sanitized(l.comment);
            emit(std::string(key.name) + " = " + toml_value(candidate) + comment, l.number);
            ++converted_;
            if (key.name == "detach_false_primary" && normalized_value(value) == "on")
                add(Level::Note, l.number, l.key, "accepted, but has no effect in this splitpool version");
            return;
        }
        if (problem.empty()) problem = p;
    }
    if ((key.type == "int") && !parse_integer(value)) problem = "expected an integer, got '" + value + "'";
    add(Level::Error, l.number, l.key, problem);
}

void Importer::backend_setting(const PgpoolLine& l, const NodeKey& nk) {
    if (nk.too_large)
        return add(Level::Error, l.number, l.key, "node number out of range (at most " +
                                                      std::to_string(kMaxBackends) + " backends, 0.." +
                                                      std::to_string(kMaxBackends - 1) + ")");
    daemon::BackendConfig check;
    std::string problem;
    for (const RawValue& candidate : backend_candidates(nk.field, l.value)) {
        std::string p = daemon::backend_store(check, nk.field, candidate);
        if (p.empty()) {
            nodes_[nk.node].push_back({nk.field, candidate, l.number, l.comment});
            emit("# " + sanitized(l.key) + ": in [[backend]] node " + std::to_string(nk.node) + " below", l.number);
            ++converted_;
            return;
        }
        if (problem.empty()) problem = p;
    }
    add(Level::Error, l.number, l.key, problem);
}

void Importer::unsupported_setting(const PgpoolLine& l, const UnsupportedParam& p) {
    bool neutral = p.neutral && normalized_value(l.value) == normalized_value(*p.neutral);
    bool gated = !gate_open(p.gate);
    if (neutral || gated) {
        // A gated parameter's reason is its gate's: the header lists the gate itself when it is set.
        std::string why = neutral           ? "no effect: splitpool behaves as this value"
                          : p.gate == kGateNever ? "no effect in streaming_replication mode"
                                                 : "no effect while " + std::string(p.gate) + " is not set";
        emit("# IGNORED (" + why + "): " + sanitized(l.text), l.number);
        add(Level::Ignored, l.number, l.key, neutral ? why + " (" + std::string(p.reason) + ")" : why);
        return;
    }
    emit("# NOT SUPPORTED: " + std::string(p.reason), l.number);
    emit("# " + sanitized(l.text), l.number);
    add(Level::Unsupported, l.number, l.key, std::string(p.reason));
}

void Importer::backends() {
    if (nodes_.empty()) {
        add(Level::Error, 0, "", "no backend is defined (backend_hostname0 = '...'): splitpool needs at least one");
        return;
    }
    int expected = 0;
    for (auto& [node, values] : nodes_) {
        int first_line = values.front().line;
        if (node != expected) {
            add(Level::Error, first_line, "backend_hostname" + std::to_string(expected),
                "backend " + std::to_string(expected) + " is not defined but backend " + std::to_string(node) +
                    " is: splitpool numbers its nodes 0, 1, 2, ... without gaps");
            return;
        }
        ++expected;
        bool has_host = std::any_of(values.begin(), values.end(), [](auto& v) { return v.field == "hostname"; });
        if (!has_host) add(Level::Error, first_line, "backend_hostname" + std::to_string(node), "is required");
        tail_.push_back({"", first_line});
        tail_.push_back({"[[backend]]  # node " + std::to_string(node), first_line});
        // Fields in splitpool's order; of a field given twice the last was kept by first_pass.
        for (std::string_view field : daemon::backend_key_names())
            for (const BackendValue& v : values)
                if (v.field == field) {
                    std::string comment = v.comment.empty() ? "" : "  " + sanitized(v.comment);
                    tail_.push_back({v.field + " = " + toml_value(v.value) + comment, v.line});
                }
    }
}

void Importer::final_notes() {
    auto note_password = [&](const char* period_key, int period, const std::string& user, const std::string& password,
                             const char* password_key) {
        if (period <= 0 || user.empty() || !password.empty()) return;
        auto it = last_line_.find(password_key);
        add(Level::Note, it == last_line_.end() ? 0 : it->second, password_key,
            std::string("empty while ") + period_key +
                " > 0: splitpool does not look the password up in pool_passwd; give it here (plain, md5 or AES)");
    };
    note_password("health_check_period", scratch_.health_check_period, scratch_.health_check_user,
                  scratch_.health_check_password, "health_check_password");
    note_password("sr_check_period", scratch_.sr_check_period, scratch_.sr_check_user, scratch_.sr_check_password,
                  "sr_check_password");
}

// The output goes through splitpool's parser, so whatever it refuses (rules between keys) is
// reported here at the pgpool.conf line it came from.
void Importer::final_check() {
    std::string text;
    std::vector<int> source_of;
    for (auto* part : {&body_, &tail_})
        for (auto& [out, source] : *part) {
            text += sanitized_lines(out) + "\n";  // as run() writes it
            source_of.push_back(source);
        }
    daemon::LoadResult loaded = daemon::parse_config(text, std::string(kCheckName));
    for (const std::string& e : loaded.errors) {
        std::string rest = e.substr(std::min(e.size(), kCheckName.size() + 1));
        size_t colon = rest.find(':');
        std::optional<int64_t> out_line = parse_integer(rest.substr(0, colon));
        int line = out_line && *out_line >= 1 && size_t(*out_line) <= source_of.size() ? source_of[*out_line - 1] : 0;
        std::string message = colon == std::string::npos ? rest : trimmed(rest.substr(colon + 1));
        add(Level::Error, line, "", "splitpool refuses the result: " + message);
    }
}

std::string Importer::header() const {
    std::string out = "# splitpool configuration converted from " + sanitized(options_.source_name) +
                      " by `splitpool import-pgpool-conf`.\n"
                      "# Keys keep their pgpool names; the backend_*N keys are the [[backend]] tables at the end.\n"
                      "# Check it with `splitpool -f FILE --check-config`.\n";
    std::string listed, ignored;
    int listed_count = 0, ignored_count = 0;
    for (const ImportDiagnostic& d : diagnostics_) {
        if (d.level == Level::Ignored) {
            ignored += (ignored_count++ % 6 == 0 ? "\n#   " : ", ") + d.key;
        } else if (d.level != Level::Error) {
            ++listed_count;
            listed += "#   " + (d.line > 0 ? "line " + std::to_string(d.line) + ": " : "") +
                      sanitized(diagnostic_body(d)) + "\n";
        }
    }
    if (listed_count == 0 && ignored_count == 0) return out + "# Every parameter was converted.\n";
    if (listed_count > 0) out += "#\n# Not converted, or worth a look (" + std::to_string(listed_count) + "):\n" + listed;
    if (ignored_count > 0)
        out += "#\n# Dropped because they have no effect with their values here (" + std::to_string(ignored_count) +
               "; see the IGNORED comments):" + ignored + "\n";
    return out;
}

ImportResult Importer::run(std::string_view text) {
    lines_ = read_pgpool_conf(text);
    first_pass();
    for (const PgpoolLine& l : lines_) line(l);
    backends();
    final_notes();
    if (!has_errors()) final_check();
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(), [](auto& a, auto& b) { return a.line < b.line; });
    ImportResult result;
    result.ok = !has_errors();
    if (result.ok) {
        result.toml = header() + "\n";
        for (auto* part : {&body_, &tail_})
            for (auto& [out, source] : *part) result.toml += out + "\n";
        result.toml = sanitized_lines(result.toml);  // whatever a message quoted from the input (as final_check)
    }
    result.diagnostics = std::move(diagnostics_);
    result.converted = converted_;
    return result;
}

}  // namespace

ImportResult import_pgpool_conf(std::string_view text, const ImportOptions& options) {
    return Importer(options).run(text);
}

std::string diagnostic_text(const std::string& source_name, const ImportDiagnostic& d) {
    return source_name + (d.line > 0 ? ":" + std::to_string(d.line) : "") + ": " + diagnostic_body(d);
}

int import_pgpool_conf_command(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fprintf(stderr, "splitpool: could not open \"%s\": %s\n", path.c_str(), strerror(errno));
        return 1;
    }
    std::ostringstream text;
    text << in.rdbuf();
    ImportOptions options;
    options.source_name = path;
    std::error_code ec;
    options.source_dir = std::filesystem::absolute(path, ec).parent_path().lexically_normal().string();
    ImportResult result = import_pgpool_conf(text.str(), options);
    int counts[4] = {0, 0, 0, 0};
    for (const ImportDiagnostic& d : result.diagnostics) {
        fprintf(stderr, "%s\n", diagnostic_text(path, d).c_str());
        ++counts[static_cast<int>(d.level)];
    }
    if (!result.ok) {
        fprintf(stderr, "splitpool: %s was not converted: %d error(s)\n", path.c_str(), counts[0]);
        return 1;
    }
    fputs(result.toml.c_str(), stdout);
    fprintf(stderr, "splitpool: converted %s: %d parameters carried over, %d not supported, %d ignored, %d note(s)\n",
            path.c_str(), result.converted, counts[1], counts[2], counts[3]);
    return 0;
}

}  // namespace splitpool::tools
