// Fixture for layering_check_reports_outward_includes: an etcd header that reaches into the daemon.
#pragma once
#include "agent/core/manifest.hpp"
#include "agent/daemon/agent.hpp"
