// SQL-level administration answered by splitpool itself: SHOW POOL_* and PGPOOL SHOW/SET/RESET.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// What one client session keeps between admin commands.
struct AdminSession {
    // PGPOOL SET overlay: key -> value as PGPOOL SHOW prints it ("on", "30", "always").
    std::map<std::string, std::string, std::less<>> values;
    // The session's load-balance node, for SHOW POOL_NODES' load_balance_node column (-1 = none yet).
    int load_balance_node = -1;
};

// Cheap test on the start of a statement (after whitespace and comments, case-insensitive):
// "show pool_" or "pgpool ". A true answer means answer_admin_command() owns the statement.
bool is_admin_command(std::string_view sql);

// Keys PGPOOL SET/RESET accept, as pgpool's session-context parameters.
const std::vector<std::string_view>& session_settable_keys();

// Simple protocol: RowDescription + DataRows + CommandComplete, or CommandComplete alone (SET,
// RESET), or one ErrorResponse (42601 syntax, 42704 unknown key, 55P02 not session-settable,
// 22023 bad value). Never ReadyForQuery: the caller adds it.
// extended = true leaves out the RowDescription (the caller answered Describe with it).
// PGPOOL SET/RESET change `session` only here, never in admin_row_description().
std::string answer_admin_command(std::string_view sql, const Config& config, const shm::StatusTable& table,
                                 AdminSession& session, bool extended);

// Extended protocol, Describe: RowDescription ('T'), NoData ('n') for PGPOOL SET/RESET, or the
// ErrorResponse the statement would raise. No side effects. `formats` are the result-format codes
// of the Bind (none = text, one = all columns, else per column); every column is text, whose
// binary form is the same bytes, so only the RowDescription mentions the format.
std::string admin_row_description(std::string_view sql, const Config& config, const shm::StatusTable& table,
                                  const AdminSession& session, const std::vector<int16_t>& formats = {});

// Extended protocol, Execute: DataRows + CommandComplete (or the ErrorResponse).
std::string admin_data_rows(std::string_view sql, const Config& config, const shm::StatusTable& table,
                            AdminSession& session);

// ParameterDescription with no parameters: the first answer to Describe of a statement.
std::string admin_parameter_description();

// The session's view of the configuration: `config` with the PGPOOL SET overlay applied.
void apply_session_overlay(const AdminSession& session, Config& config);

}  // namespace splitpool::daemon
