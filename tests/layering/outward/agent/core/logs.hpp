// Fixture for layering_check_reports_outward_includes: a core header that logs. Never compiled.
#pragma once

#include <string>
#include <spdlog/spdlog.h>
