// pg_md5: pgpool's md5 tool: prints md5(password) for pcp.conf or stores "md5..." pool_passwd entries.
#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "daemon/auth/md5.hpp"
#include "tools/passwd_tool.hpp"

namespace {

using namespace splitpool;

void print_usage(const char* prog, int exit_code) {
    std::fprintf(exit_code == EXIT_SUCCESS ? stdout : stderr,
                 "Usage:\n"
                 "\n"
                 "  %s [OPTIONS]\n"
                 "  %s <PASSWORD>\n"
                 "\n"
                 "  --prompt, -p         Prompt password using standard input.\n"
                 "  --md5auth, -m        Produce md5 authentication password.\n"
                 "  --username, -u USER  When producing a md5 authentication password,\n"
                 "                       create the pool_passwd entry for USER.\n"
                 "  --config-file, -f CONFIG-FILE  Specify splitpool.toml.\n"
                 "  --input-file, -i INPUT-FILE  Specify file containing username and password pairs.\n"
                 "  --help, -h           This help menu.\n"
                 "\n"
                 "Warning: At most %zu characters are allowed for input.\n"
                 "Warning: Plain password argument is deprecated for security concerns\n"
                 "         and kept for compatibility. Please prefer using password\n"
                 "         prompt or input file method.\n",
                 prog, prog, tools::kMaxUserNameLength);
    std::exit(exit_code);
}

struct Options {
    std::string config_file = tools::default_config_file();
    std::string input_file;
    std::string user;
    bool md5auth = false;
    bool prompt = false;
};

Options parse_options(int argc, char** argv) {
    static const option kLong[] = {
        {"help", no_argument, nullptr, 'h'},           {"prompt", no_argument, nullptr, 'p'},
        {"md5auth", no_argument, nullptr, 'm'},        {"username", required_argument, nullptr, 'u'},
        {"config-file", required_argument, nullptr, 'f'}, {"input-file", required_argument, nullptr, 'i'},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    int opt;
    while ((opt = getopt_long(argc, argv, "hpmf:i:u:", kLong, nullptr)) != -1) {
        switch (opt) {
        case 'p': o.prompt = true; break;
        case 'm': o.md5auth = true; break;
        case 'f': o.config_file = optarg; break;
        case 'i': o.input_file = optarg; break;
        case 'u':
            o.user = tools::user_name_argument(optarg);
            break;
        case 'h': print_usage(argv[0], EXIT_SUCCESS); break;
        default: print_usage(argv[0], EXIT_FAILURE); break;  // pgpool exits 0 here; a typo is a failure
        }
    }
    return o;
}

// -m: "md5" + md5(password + user) into pool_passwd; otherwise md5(password) on stdout.
bool emit(const Options& o, const std::string& user, const std::string& password) {
    if (!o.md5auth) {
        std::string hex = auth::md5_hex(password);
        if (hex.empty()) {
            std::fprintf(stderr, "md5 is not available in this OpenSSL build\n");
            return false;
        }
        std::printf("%s\n", hex.c_str());
        return true;
    }
    std::string name = tools::entry_user_name(user);
    if (name.empty()) return false;
    std::string stored = auth::pg_md5_stored(password, name);
    if (stored.empty()) {
        std::fprintf(stderr, "md5 is not available in this OpenSSL build\n");
        return false;
    }
    return tools::write_pool_passwd_entry(o.config_file, name, stored);
}

bool process_input_file(const Options& o) {
    std::ifstream in;
    if (!tools::open_input_file(o.input_file, in)) return false;
    std::string line;
    bool ok = true;
    for (int n = 1; std::getline(in, line); ++n) {
        std::fprintf(stdout, "LINE#%02d: ", n);
        tools::InputLine l = tools::split_input_line(line);
        if (l.blank) {
            std::fprintf(stdout, "BLANK LINE\n");
        } else if (!l.valid) {
            std::fprintf(stdout, "Invalid username:password pair\n");
        } else if (l.user.size() > tools::kMaxUserNameLength) {
            std::fprintf(stdout, "input exceeds maximum username length %zu\n\n", tools::kMaxUserNameLength);
        } else if (l.password.size() > tools::kMaxPasswordLength) {
            std::fprintf(stdout, "input exceeds maximum password length %zu\n", tools::kMaxPasswordLength);
        } else {
            std::fprintf(stdout, "USER: <%s>\n", l.user.c_str());
            std::fflush(stdout);
            if (!emit(o, l.user, l.password)) ok = false;
        }
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    if (!o.input_file.empty()) return process_input_file(o) ? EXIT_SUCCESS : EXIT_FAILURE;
    std::string password;
    if (o.prompt) {
        std::string error;
        auto p = tools::prompt_secret("password: ", tools::kMaxPasswordLength, &error);
        if (!p) {
            std::fprintf(stderr, "%s\n", error.c_str());
            return EXIT_FAILURE;
        }
        password = std::move(*p);
    } else {
        if (optind >= argc) print_usage(argv[0], EXIT_FAILURE);
        password = argv[optind];
        if (password.size() > tools::kMaxPasswordLength) {
            std::fprintf(stderr, "Error: Input exceeds maximum password length!\n\n");
            print_usage(argv[0], EXIT_FAILURE);
        }
    }
    return emit(o, o.user, password) ? EXIT_SUCCESS : EXIT_FAILURE;
}
