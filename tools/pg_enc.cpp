// pg_enc: pgpool's password encryption tool: prints or stores "AES..." pool_passwd entries.
#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <openssl/crypto.h>

#include "daemon/auth/aes.hpp"
#include "tools/passwd_tool.hpp"

namespace {

using namespace splitpool;

void print_usage(const char* prog, int exit_code) {
    FILE* out = exit_code == EXIT_SUCCESS ? stdout : stderr;
    std::string home = auth::default_pool_key_path();
    // The help names the home-directory default, as pgpool's does, even when PGPOOLKEYFILE is set.
    const char* env = std::getenv("PGPOOLKEYFILE");
    if (env != nullptr) {
        unsetenv("PGPOOLKEYFILE");
        home = auth::default_pool_key_path();
        setenv("PGPOOLKEYFILE", env, 1);
    }
    std::fprintf(out, "splitpool version %s (pgpool-II compatible),\n", tools::version_string().c_str());
    std::fprintf(out, "  password encryption utility for Pgpool\n\n");
    std::fprintf(out, "Usage:\n");
    std::fprintf(out, "  %s [OPTIONS] <PASSWORD>\n", prog);
    std::fprintf(out, "  -k, --key-file=KEY_FILE\n");
    std::fprintf(out, "                       Set the path to the encryption key file.\n");
    std::fprintf(out, "                       Default: %s\n", home.empty() ? "USER-HOME-DIR/.pgpoolkey" : home.c_str());
    std::fprintf(out, "                       Can be overridden by the PGPOOLKEYFILE environment variable.\n");
    std::fprintf(out, "  -K, --enc-key=ENCRYPTION_KEY\n");
    std::fprintf(out, "                       Encryption key to be used for encrypting database passwords.\n");
    std::fprintf(out, "  -f, --config-file=CONFIG_FILE\n");
    std::fprintf(out, "                       Specifies the splitpool.toml file.\n");
    std::fprintf(out, "  -i, --input-file=INPUT-FILE\n");
    std::fprintf(out, "                       Specify file containing username and password pairs.\n");
    std::fprintf(out, "  -p, --prompt         Prompt for database password using standard input.\n");
    std::fprintf(out, "  -P, --prompt-for-key Prompt for encryption key using standard input.\n");
    std::fprintf(out, "  -m, --update-pass    Create encrypted password entry in the pool_passwd file.\n");
    std::fprintf(out, "  -u, --username       The username for the pool_password entry.\n");
    std::fprintf(out, "  -h, --help           Print this help.\n\n");
    std::exit(exit_code);
}

struct Options {
    std::string config_file = tools::default_config_file();
    std::string input_file;
    std::string key_file;
    std::string key;
    std::string user;
    bool update = false;
    bool prompt = false;
    bool prompt_for_key = false;
};

Options parse_options(int argc, char** argv) {
    static const option kLong[] = {
        {"help", no_argument, nullptr, 'h'},          {"prompt", no_argument, nullptr, 'p'},
        {"prompt-for-key", no_argument, nullptr, 'P'}, {"update-pass", no_argument, nullptr, 'm'},
        {"username", required_argument, nullptr, 'u'}, {"enc-key", required_argument, nullptr, 'K'},
        {"key-file", required_argument, nullptr, 'k'}, {"config-file", required_argument, nullptr, 'f'},
        {"input-file", required_argument, nullptr, 'i'}, {nullptr, 0, nullptr, 0},
    };
    Options o;
    int opt;
    while ((opt = getopt_long(argc, argv, "hPpmf:i:u:k:K:", kLong, nullptr)) != -1) {
        switch (opt) {
        case 'p': o.prompt = true; break;
        case 'P': o.prompt_for_key = true; break;
        case 'm': o.update = true; break;
        case 'f': o.config_file = optarg; break;
        case 'i': o.input_file = optarg; break;
        case 'k': o.key_file = optarg; break;
        case 'K': o.key = optarg; break;
        case 'u':
            o.user = tools::user_name_argument(optarg);
            break;
        case 'h': print_usage(argv[0], EXIT_SUCCESS); break;
        default: print_usage(argv[0], EXIT_FAILURE); break;  // pgpool exits 0 here; a typo is a failure
        }
    }
    return o;
}

// The key from -P, -K or the key file, in pgpool's order of precedence; exits when there is none.
std::string obtain_key(const Options& o) {
    std::string error;
    if (o.prompt_for_key) {
        auto key = tools::prompt_secret("encryption key: ", auth::kMaxPoolKeyLength, &error);
        if (!key) {
            std::fprintf(stderr, "%s\n", error.c_str());
            std::exit(EXIT_FAILURE);
        }
        if (key->empty()) {
            std::fprintf(stderr, "encryption key not provided\n");
            std::exit(EXIT_FAILURE);
        }
        return *key;
    }
    if (!o.key.empty()) {
        if (o.key.size() > auth::kMaxPoolKeyLength) {
            // pgpool would cut it at 256 bytes, but reads only 255 from a key file: refuse the mismatch.
            std::fprintf(stderr, "Error: encryption key exceeds maximum length %zu!\n\n", auth::kMaxPoolKeyLength);
            std::exit(EXIT_FAILURE);
        }
        return o.key;
    }
    std::string path = o.key_file.empty() ? auth::default_pool_key_path() : o.key_file;
    std::fprintf(stdout, "trying to read key from file %s\n", path.c_str());
    std::fflush(stdout);
    auth::PoolKey key = auth::read_pool_key(path);
    for (const auto& w : key.warnings) tools::print_warning(w);
    if (!key.key) {
        std::fprintf(stderr, "encryption key not provided\n");
        std::exit(EXIT_FAILURE);
    }
    return *key.key;
}

bool encrypt_one(const Options& o, const std::string& user, const std::string& password, const std::string& key) {
    auto b64 = auth::aes_encrypt_password(password, key);
    if (!b64) {
        std::fprintf(stderr, "password encryption failed\n\n");
        return false;
    }
    if (!o.update) {
        std::fprintf(stdout, "\n%s\n", b64->c_str());
        std::fprintf(stdout, "pool_passwd string: AES%s\n", b64->c_str());
        return true;
    }
    std::string name = tools::entry_user_name(user);
    if (name.empty()) return false;
    return tools::write_pool_passwd_entry(o.config_file, name, "AES" + *b64);
}

bool process_input_file(const Options& o, const std::string& key) {
    std::ifstream in;
    if (!tools::open_input_file(o.input_file, in)) return false;
    std::string line;
    bool ok = true;
    for (int n = 1; std::getline(in, line); ++n) {
        tools::InputLine l = tools::split_input_line(line);
        if (l.blank) continue;
        if (!l.valid) {
            std::fprintf(stderr, "LINE#%02d: invalid username:password pair\n", n);
        } else if (l.user.size() > tools::kMaxUserNameLength) {
            std::fprintf(stderr, "LINE#%02d: input exceeds maximum username length %zu\n", n, tools::kMaxUserNameLength);
        } else if (l.password.size() > tools::kMaxPasswordLength) {
            std::fprintf(stderr, "LINE#%02d: input exceeds maximum password length %zu\n", n, tools::kMaxPasswordLength);
        } else if (!encrypt_one(o, l.user, l.password, key)) {
            ok = false;
        }
        OPENSSL_cleanse(line.data(), line.size());
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    std::string password;
    if (o.input_file.empty()) {
        if (o.prompt || optind >= argc) {
            std::string error;
            auto p = tools::prompt_secret("db password: ", tools::kMaxPasswordLength, &error);
            if (!p) {
                std::fprintf(stderr, "%s\n", error.c_str());
                return EXIT_FAILURE;
            }
            password = std::move(*p);
        } else {
            password = argv[optind];
            if (password.size() > tools::kMaxPasswordLength) {
                std::fprintf(stderr, "Error: Input exceeds maximum password length given:%zu max allowed:%zu!\n\n",
                             password.size(), tools::kMaxPasswordLength);
                print_usage(argv[0], EXIT_FAILURE);
            }
        }
    }
    std::string key = obtain_key(o);
    bool ok = o.input_file.empty() ? encrypt_one(o, o.user, password, key) : process_input_file(o, key);
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(password.data(), password.size());
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
