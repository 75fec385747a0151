// Fixture for layering_check_reports_outward_includes: an output header that reaches into runtime.
#pragma once
#include "agent/runtime/discovery.hpp"
