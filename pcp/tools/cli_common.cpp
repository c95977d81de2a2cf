// What every pcp_* tool shares: pgpool's options and usage text, the password, connecting, output helpers.
#include "pcp/tools/cli_common.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef SPLITPOOL_VERSION
#define SPLITPOOL_VERSION "0.1.0"
#endif

namespace splitpool::pcp::tools {
namespace {

struct ToolSpec {
    Tool tool;
    const char* name;
    const char* options;       // pgpool's getopt strings, per tool
    const char* description;   // pgpool's usage line
};

constexpr ToolSpec kTools[] = {
    {Tool::AttachNode, "pcp_attach_node", "n:h:p:U:wWvd", "attach a node from pgpool-II"},
    {Tool::DetachNode, "pcp_detach_node", "n:h:p:U:gwWvd", "detach a node from pgpool-II"},
    {Tool::NodeCount, "pcp_node_count", "h:p:U:wWvd", "display the total number of nodes under pgpool-II's control"},
    {Tool::NodeInfo, "pcp_node_info", "n:h:p:U:awWvd", "display a pgpool-II node's information"},
    {Tool::HealthCheckStats, "pcp_health_check_stats", "n:h:p:U:wWvd", "display a pgpool-II health check stats data"},
    {Tool::PoolStatus, "pcp_pool_status", "h:p:U:wWvd", "display pgpool configuration and status"},
    {Tool::ProcCount, "pcp_proc_count", "h:p:U:wWvd", "display the list of pgpool-II child process PIDs"},
    {Tool::ProcInfo, "pcp_proc_info", "h:p:P:U:awWvd", "display a pgpool-II child process' information"},
    {Tool::PromoteNode, "pcp_promote_node", "n:h:p:U:gswWvd", "promote a node as new main from pgpool-II"},
    {Tool::StopPgpool, "pcp_stop_pgpool", "m:h:p:U:s:wWvda", "terminate pgpool-II"},
    {Tool::ReloadConfig, "pcp_reload_config", "h:p:U:s:wWvd", "reload a pgpool-II config file"},
    {Tool::LogRotate, "pcp_log_rotate", "h:p:U:s:wWvd", "rotate the Pgpool-II's log file"},
};

const option kLongOptions[] = {
    {"help", no_argument, nullptr, '?'},        {"debug", no_argument, nullptr, 'd'},
    {"version", no_argument, nullptr, 'V'},     {"host", required_argument, nullptr, 'h'},
    {"port", required_argument, nullptr, 'p'},  {"process-id", required_argument, nullptr, 'P'},
    {"username", required_argument, nullptr, 'U'}, {"no-password", no_argument, nullptr, 'w'},
    {"password", no_argument, nullptr, 'W'},    {"mode", required_argument, nullptr, 'm'},
    {"scope", required_argument, nullptr, 's'}, {"gracefully", no_argument, nullptr, 'g'},
    {"switchover", no_argument, nullptr, 's'},  {"verbose", no_argument, nullptr, 'v'},
    {"all", no_argument, nullptr, 'a'},         {"node-id", required_argument, nullptr, 'n'},
    {nullptr, 0, nullptr, 0},
};

const ToolSpec& spec(Tool tool) {
    for (const ToolSpec& s : kTools)
        if (s.tool == tool) return s;
    return kTools[0];
}

bool requires_node_id(Tool t) {
    return t == Tool::AttachNode || t == Tool::DetachNode || t == Tool::HealthCheckStats || t == Tool::PromoteNode;
}

bool supports_scope(Tool t) { return t == Tool::StopPgpool || t == Tool::ReloadConfig || t == Tool::LogRotate; }

// Every option the tool's getopt string takes is listed; --help output goes to stdout (exit 0),
// the same text after a usage error to stderr.
void usage(Tool t, FILE* out) {
    const ToolSpec& s = spec(t);
    fprintf(out, "%s - %s\n", s.name, s.description);
    fprintf(out, "Usage:\n");
    fprintf(out, "%s [OPTION...] %s\n", s.name,
            requires_node_id(t) || t == Tool::NodeInfo ? "[node-id]" : t == Tool::ProcInfo ? "[process-id]" : "");
    fprintf(out, "Options:\n");
    fprintf(out, "  -U, --username=NAME    username for PCP authentication (default: the OS user)\n");
    fprintf(out, "  -h, --host=HOSTNAME    pgpool-II host (default: the Unix socket in /tmp;\n");
    fprintf(out, "                         a value starting with '/' is a socket directory)\n");
    fprintf(out, "  -p, --port=PORT        PCP port number (default: 9898)\n");
    fprintf(out, "  -w, --no-password      never prompt for password (use PCPPASSFILE or ~/.pcppass)\n");
    fprintf(out, "  -W, --password         force password prompt (should happen automatically)\n");
    if (requires_node_id(t)) fprintf(out, "  -n, --node-id=NODEID   ID of a backend node\n");
    if (t == Tool::NodeInfo) {
        fprintf(out, "  -n, --node-id=NODEID   ID of a backend node (default: every node)\n");
        fprintf(out, "  -a, --all              display all backend nodes information\n");
    }
    if (t == Tool::StopPgpool) {
        fprintf(out, "  -m, --mode=MODE        MODE can be \"smart\", \"fast\", or \"immediate\"\n");
        fprintf(out, "  -a, --all              accepted for compatibility; no effect\n");
    }
    if (supports_scope(t)) {
        fprintf(out, "  -s, --scope=SCOPE      SCOPE can be \"cluster\", or \"local\"\n");
        fprintf(out, "                         cluster scope do operations on all Pgpool-II nodes\n");
        fprintf(out, "                         part of the watchdog cluster (splitpool: same as local)\n");
    }
    if (t == Tool::PromoteNode || t == Tool::DetachNode)
        fprintf(out, "  -g, --gracefully       %s gracefully (optional)\n", t == Tool::PromoteNode ? "promote" : "detach");
    if (t == Tool::PromoteNode)
        fprintf(out, "  -s, --switchover       switchover primary to specified node (optional)\n");
    if (t == Tool::ProcInfo) {
        fprintf(out, "  -P, --process-id=PID   PID of the child process to get information for (optional)\n");
        fprintf(out, "  -a, --all              display all child processes and their available connection slots\n");
    }
    fprintf(out, "  -d, --debug            enable debug message (optional)\n");
    fprintf(out, "  -v, --verbose          output verbose messages\n");
    fprintf(out, "  -V, --version          display version information, then exit\n");
    fprintf(out, "  -?, --help             print this help\n\n");
    fprintf(out, "Environment: PCPPASSFILE names the password file (default: ~/.pcppass, lines\n");
    fprintf(out, "host:port:username:password, mode 0600).\n");
}

// A decimal number of digits only, at most `max`; atoi would read "1xyz" as 1 and wrap
// 4294967298 around to 2.
bool parse_decimal(const char* text, long max, int& value) {
    if (!text || !*text || strlen(text) > 10) return false;
    long v = 0;
    for (const char* p = text; *p; ++p) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    if (v > max) return false;
    value = int(v);
    return true;
}

// Returns -1 when accepted, else the exit status.
int parse_node_id(Tool t, const char* text, CliOptions& out) {
    if (!parse_decimal(text, kMaxNodeId, out.node_id) || out.node_id < 0 || out.node_id > kMaxNodeId) {
        fprintf(stderr, "%s: Invalid node-id \"%s\", must be between 0 and %d\n", spec(t).name, text, kMaxNodeId);
        return 1;
    }
    return -1;
}

int parse_process_id(Tool t, const char* text, CliOptions& out) {
    if (!parse_decimal(text, 0x7fffffff, out.process_id) || out.process_id <= 0) {
        fprintf(stderr, "%s: Invalid process-id \"%s\", must be greater than 0\n", spec(t).name, text);
        return 1;
    }
    return -1;
}

int parse_mode(Tool t, const char* arg, CliOptions& out) {
    const char* name = spec(t).name;
    if (t != Tool::StopPgpool) {
        fprintf(stderr, "Invalid argument \"%s\", Try \"%s --help\" for more information.\n", arg, name);
        return 1;
    }
    std::string m = arg;
    if (m == "s" || m == "smart") out.shutdown_mode = 's';
    else if (m == "f" || m == "fast") out.shutdown_mode = 'f';
    else if (m == "i" || m == "immediate") out.shutdown_mode = 'i';
    else {
        fprintf(stderr, "%s: Invalid shutdown mode \"%s\", must be either \"smart\" \"immediate\" or \"fast\" \n",
                name, arg);
        return 1;
    }
    return -1;
}

// -s is --scope for stop and reload, --switchover for promote.
int parse_s(Tool t, const char* arg, CliOptions& out) {
    const char* name = spec(t).name;
    if (t == Tool::PromoteNode) {
        out.switchover = true;
        return -1;
    }
    if (!supports_scope(t)) {
        fprintf(stderr, "Invalid argument \"%s\", Try \"%s --help\" for more information.\n", arg ? arg : "", name);
        return 1;
    }
    std::string s = arg ? arg : "";
    if (s == "c" || s == "cluster") out.scope = 'c';
    else if (s == "l" || s == "local") out.scope = 'l';
    else {
        fprintf(stderr, "%s: Invalid command scope \"%s\", must be either \"cluster\" or \"local\" \n", name,
                s.c_str());
        return 1;
    }
    return -1;
}

int parse_option(Tool t, int ch, const char* arg, CliOptions& out) {
    const char* name = spec(t).name;
    switch (ch) {
    case 'd': out.connect.debug = stdout; return -1;
    case 'a': out.all = true; return -1;
    case 'w': out.password_mode = PasswordMode::Never; return -1;
    case 'W': out.password_mode = PasswordMode::Always; return -1;
    case 'g': out.gracefully = true; return -1;
    case 'v': out.verbose = true; return -1;
    case 's': return parse_s(t, arg, out);
    case 'm': return parse_mode(t, arg, out);
    case 'n': return parse_node_id(t, arg, out);
    case 'P': return parse_process_id(t, arg, out);
    case 'h': out.connect.host = arg; return -1;
    case 'U': out.connect.user = arg; return -1;
    case 'p':
        if (!parse_decimal(arg, 65535, out.connect.port)) out.connect.port = 0;
        if (out.connect.port <= 1024 || out.connect.port > 65535) {
            fprintf(stderr, "%s: Invalid port number \"%s\", must be between 1024 and 65535\n", name, arg);
            return 1;
        }
        return -1;
    default:   // getopt_long has already complained
        fprintf(stderr, "Try \"%s --help\" for more information.\n\n", name);
        return 1;
    }
}

int parse_positionals(Tool t, int argc, char** argv, CliOptions& out) {
    for (; optind < argc; ++optind) {
        const char* arg = argv[optind];
        int rc = -1;
        if (t == Tool::ProcInfo && out.process_id <= 0) rc = parse_process_id(t, arg, out);
        else if ((requires_node_id(t) || t == Tool::NodeInfo) && out.node_id < 0) rc = parse_node_id(t, arg, out);
        else fprintf(stderr, "%s: Warning: extra command-line argument \"%s\" ignored\n", spec(t).name, arg);
        if (rc >= 0) return rc;
    }
    if (out.node_id < 0 && requires_node_id(t)) {
        fprintf(stderr, "%s: missing node-id\n", spec(t).name);
        fprintf(stderr, "Try \"%s --help\" for more information.\n\n", spec(t).name);
        return 1;
    }
    return -1;
}

// PostgreSQL's simple_prompt: the terminal, without echo; stdin/stderr when there is none.
std::string prompt_password() {
    FILE* in = fopen("/dev/tty", "r");
    FILE* out = in ? fopen("/dev/tty", "w") : nullptr;
    if (!in || !out) {
        if (in) fclose(in);
        in = stdin;
        out = stderr;
    }
    termios saved{}, quiet{};
    bool tty = tcgetattr(fileno(in), &saved) == 0;
    if (tty) {
        quiet = saved;
        quiet.c_lflag &= tcflag_t(~ECHO);
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
    }
    fputs("Password: ", out);
    fflush(out);
    char line[128] = "";
    if (!fgets(line, sizeof line, in)) line[0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (tty) {
        tcsetattr(fileno(in), TCSAFLUSH, &saved);
        fputs("\n", out);
        fflush(out);
    }
    if (in != stdin) {
        fclose(in);
        fclose(out);
    }
    return line;
}

bool have_terminal() {
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    close(fd);
    return true;
}

// pgpool 4.3 always prompts unless -w; we prompt only when .pcppass has no answer, so scripts work
// without -w and people at a terminal are still asked.
void resolve_password(CliOptions& o) {
    if (o.password_mode == PasswordMode::Never) return;
    if (o.password_mode == PasswordMode::Default) {
        std::string user = o.connect.user.empty() ? default_pcp_user() : o.connect.user;
        if (pcppass_lookup(pcppass_path(), pcppass_host(o.connect.host), std::to_string(o.connect.port), user))
            return;
        if (!have_terminal()) return;
    }
    o.connect.password = prompt_password();
}

}  // namespace

const char* tool_name(Tool tool) { return spec(tool).name; }

int parse_command_line(Tool t, int argc, char** argv, CliOptions& out) {
    const char* name = spec(t).name;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)) {
        usage(t, stdout);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        fprintf(stderr, "%s (%s) %s\n", name, "splitpool", SPLITPOOL_VERSION);
        return 0;
    }
    int ch, index;
    while ((ch = getopt_long(argc, argv, spec(t).options, kLongOptions, &index)) != -1) {
        int rc = parse_option(t, ch, optarg, out);
        if (rc >= 0) return rc;
    }
    return parse_positionals(t, argc, argv, out);
}

int run_tool(Tool tool, int argc, char** argv, const ToolBody& body) {
    CliOptions options;
    int rc = parse_command_line(tool, argc, argv, options);
    if (rc >= 0) return rc;
    resolve_password(options);
    std::string error;
    std::unique_ptr<Client> client = Client::connect(options.connect, &error);
    if (!client) {
        fprintf(stderr, "%s\n", error.empty() ? "Unknown Error" : error.c_str());
        return 1;
    }
    if (!body(*client, options)) {
        fprintf(stderr, "%s\n", client->last_error().empty() ? "Unknown Error" : client->last_error().c_str());
        return 1;
    }
    fflush(stdout);
    return ferror(stdout) ? 1 : 0;
}

void print_command_successful(Tool tool) { printf("%s -- Command Successful\n", tool_name(tool)); }

void print_titled(const std::vector<std::pair<std::string, std::string>>& rows) {
    size_t width = 0;
    for (const auto& r : rows) width = std::max(width, r.first.size());
    for (const auto& r : rows) printf("%-*s : %s\n", int(width), r.first.c_str(), r.second.c_str());
    printf("\n");
}

}  // namespace splitpool::pcp::tools
