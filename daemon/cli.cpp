// Command-line options of the splitpool daemon, with pgpool's flags.
#include "daemon/cli.hpp"

#include <getopt.h>

#include <cstring>

#ifndef SPLITPOOL_SYSCONFDIR
#define SPLITPOOL_SYSCONFDIR "/usr/local/etc/splitpool"
#endif

namespace splitpool::daemon {

std::string default_config_file() { return SPLITPOOL_SYSCONFDIR "/splitpool.toml"; }

std::string usage_text() {
    return "splitpool, a read/write-splitting connection pooler for PostgreSQL (pgpool-II compatible).\n\n"
           "Usage:\n"
           "  splitpool [ -f CONFIG_FILE ] [ -F PCP_CONFIG_FILE ] [ -a HBA_CONFIG_FILE ]\n"
           "            [ -k KEY_FILE ] [ -n ] [ -D ] [ -d ]\n"
           "  splitpool [ -f CONFIG_FILE ] [ -m SHUTDOWN-MODE ] stop\n"
           "  splitpool [ -f CONFIG_FILE ] reload\n"
           "  splitpool [ -f CONFIG_FILE ] --check-config\n"
           "  splitpool import-pgpool-conf PGPOOL_CONF > splitpool.toml\n\n"
           "Common options:\n"
           "  -a, --hba-file=HBA_CONFIG_FILE   set the path to the pool_hba.conf file\n"
           "  -f, --config-file=CONFIG_FILE    set the path to the splitpool.toml file\n"
           "                                   (default: " + default_config_file() + ")\n"
           "  -F, --pcp-file=PCP_CONFIG_FILE   set the path to the pcp.conf file\n"
           "  -k, --key-file=KEY_FILE          set the path to the pgpool key file (.pgpoolkey)\n"
           "  -h, --help                       print this help\n"
           "  -v, --version                    print the version\n\n"
           "Start options:\n"
           "  -C, --check-config               validate the configuration file and exit\n"
           "      --sample-config              print the fully commented sample configuration\n"
           "      --config-reference           print the configuration reference (Markdown)\n"
           "  -d, --debug                      debug mode (log_min_messages = debug1)\n"
           "  -D, --discard-status             discard the saved node status\n"
           "  -n, --dont-detach                do not detach from the terminal (run in the foreground)\n\n"
           "Stop options:\n"
           "  -m, --mode=SHUTDOWN-MODE         smart (wait for clients), fast or immediate; s, f, i\n\n"
           "Commands:\n"
           "  stop                             stop the daemon named by pid_file_name, waiting until it is gone\n"
           "  reload                           make the daemon re-read its configuration (SIGHUP)\n"
           "  import-pgpool-conf PGPOOL_CONF   convert a pgpool.conf into splitpool's TOML on stdout; parameters\n"
           "                                   splitpool does not support are listed (in the output and on\n"
           "                                   stderr) with the reason; exits 1 on a value splitpool would\n"
           "                                   refuse, naming the pgpool.conf line\n\n"
           "Signals to the main process:\n"
           "  SIGHUP reload, SIGTERM smart stop, SIGINT fast stop, SIGQUIT immediate stop,\n"
           "  SIGUSR1 start a new log file (logging_collector = on; pcp_log_rotate does the same)\n\n"
           "Environment:\n"
           "  NOTIFY_SOCKET                    systemd readiness (Type=notify): READY=1 once listening,\n"
           "                                   RELOADING=1/READY=1 around a reload, STOPPING=1\n"
           "  PGPOOLKEYFILE                    the key file when -k is not given (default ~/.pgpoolkey)\n";
}

namespace {

bool set_stop_mode(const char* arg, Options& o) {
    static constexpr std::pair<const char*, const char*> kModes[] = {
        {"s", "smart"}, {"smart", "smart"}, {"f", "fast"}, {"fast", "fast"}, {"i", "immediate"}, {"immediate", "immediate"}};
    for (auto [name, mode] : kModes)
        if (strcmp(arg, name) == 0) {
            o.stop_mode = mode;
            return true;
        }
    return false;
}

}  // namespace

CliResult parse_cli(int argc, char** argv) {
    static const option kLong[] = {{"hba-file", required_argument, nullptr, 'a'},
                                   {"config-file", required_argument, nullptr, 'f'},
                                   {"pcp-file", required_argument, nullptr, 'F'},
                                   {"key-file", required_argument, nullptr, 'k'},
                                   {"help", no_argument, nullptr, 'h'},
                                   {"version", no_argument, nullptr, 'v'},
                                   {"mode", required_argument, nullptr, 'm'},
                                   {"debug", no_argument, nullptr, 'd'},
                                   {"discard-status", no_argument, nullptr, 'D'},
                                   {"dont-detach", no_argument, nullptr, 'n'},
                                   {"check-config", no_argument, nullptr, 'C'},
                                   {"sample-config", no_argument, nullptr, 'S'},
                                   {"config-reference", no_argument, nullptr, 'R'},
                                   {nullptr, 0, nullptr, 0}};
    Options o;
    o.config_file = default_config_file();
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":a:df:k:F:hm:nDCv", kLong, nullptr)) != -1) {
        switch (c) {
        case 'a': o.hba_file = optarg; break;
        case 'f': o.config_file = optarg; break;
        case 'F': o.pcp_file = optarg; break;
        case 'k': o.key_file = optarg; break;
        case 'd': o.debug = true; break;
        case 'D': o.discard_status = true; break;
        case 'n': o.foreground = true; break;
        case 'C': o.command = Command::CheckConfig; break;
        case 'S': o.command = Command::SampleConfig; return {o, ""};
        case 'R': o.command = Command::ConfigReference; return {o, ""};
        case 'h': o.command = Command::Help; return {o, ""};
        case 'v': o.command = Command::Version; return {o, ""};
        case 'm':
            if (!set_stop_mode(optarg, o)) return {std::nullopt, std::string("invalid shutdown mode \"") + optarg + "\""};
            break;
        case ':': return {std::nullopt, std::string("option requires an argument -- '") + char(optopt) + "'"};
        default:
            return {std::nullopt, optopt ? std::string("invalid option -- '") + char(optopt) + "'"
                                         : std::string("invalid option \"") + argv[optind - 1] + "\""};
        }
    }
    if (optind < argc) {
        std::string word = argv[optind++];
        if (word == "stop") o.command = Command::Stop;
        else if (word == "reload") o.command = Command::Reload;
        else if (word == "import-pgpool-conf") {
            if (optind >= argc) return {std::nullopt, "import-pgpool-conf needs the path of a pgpool.conf"};
            o.command = Command::ImportPgpoolConf;
            o.import_file = argv[optind++];
        }
        else return {std::nullopt, "unknown command \"" + word + "\""};
    }
    if (optind < argc) return {std::nullopt, std::string("too many arguments: \"") + argv[optind] + "\""};
    return {o, ""};
}

}  // namespace splitpool::daemon
