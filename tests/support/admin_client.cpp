#include "tests/support/admin_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <set>

namespace sidecar::test {

void add_admin_listen_default(std::vector<std::string>& argv, std::string_view manifest_yaml) {
  if (std::find(argv.begin(), argv.end(), "--admin-listen") != argv.end()) return;
  if (manifest_yaml.find("\nadmin:") != std::string_view::npos || manifest_yaml.starts_with("admin:")) return;
  argv.push_back("--admin-listen");
  argv.push_back("127.0.0.1:0");
}

namespace {

std::optional<std::uint16_t> port_from_log(std::string_view log, const std::regex& re) {
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_search(log.begin(), log.end(), m, re)) return std::nullopt;
  return static_cast<std::uint16_t>(std::stoi(m[1].str()));
}

}  // namespace

std::optional<std::uint16_t> admin_port_from_log(std::string_view log) {
  static const std::regex re(R"(admin endpoint listening on http://[^ ]*:([0-9]+))");
  return port_from_log(log, re);
}

std::optional<std::uint16_t> dns_port_from_log(std::string_view log) {
  static const std::regex re(R"(dns: answering for \S+ on [^ ]*:([0-9]+))");
  return port_from_log(log, re);
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

HttpResponse parse_response(const std::string& raw) {
  HttpResponse r;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    r.error = "no complete response head in " + std::to_string(raw.size()) + " bytes";
    return r;
  }
  const std::string head = raw.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.rfind("HTTP/1.", 0) != 0) {
    r.error = "bad status line: " + status_line;
    return r;
  }
  r.status = std::atoi(status_line.c_str() + 9);
  while (line_end != std::string::npos && line_end < head.size()) {
    const size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[lower(line.substr(0, colon))] = value;
  }
  r.body = raw.substr(head_end + 4);
  if (const auto it = r.headers.find("content-length"); it != r.headers.end()) {
    const size_t length = std::stoul(it->second);
    if (r.body.size() != length) {
      r.error = "body has " + std::to_string(r.body.size()) + " bytes, Content-Length says " + it->second;
      r.status = 0;
    }
  }
  return r;
}

}  // namespace

HttpResponse http_raw(std::uint16_t port, std::string_view raw, std::chrono::milliseconds timeout) {
  HttpResponse failed;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    failed.error = std::string("socket: ") + std::strerror(errno);
    return failed;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    failed.error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return failed;
  }
  size_t sent = 0;
  while (sent < raw.size()) {
    const ssize_t n = ::send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close early (e.g. 431); read what it said
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse_response(response);
}

HttpResponse http_request(std::uint16_t port, std::string_view method, std::string_view path,
                          std::chrono::milliseconds timeout) {
  std::string req = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (method == "POST") req += "Content-Length: 0\r\n";
  req += "Connection: close\r\n\r\n";
  return http_raw(port, req, timeout);
}

// ------------------------------------------------------------------------------------------- Prometheus

std::optional<double> PromParse::value(const std::string& name, const std::map<std::string, std::string>& labels) const {
  for (const auto& [family_name, family] : families) {
    for (const PromSample& s : family.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  return std::nullopt;
}

namespace {

bool valid_metric_name(std::string_view n) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(n.begin(), n.end(), re);
}
bool valid_label_name(std::string_view n) {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(n.begin(), n.end(), re);
}

std::optional<double> parse_value(const std::string& text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

// name{a="x",b="y"} value [timestamp]; nullopt + why on error.
std::optional<PromSample> parse_sample(const std::string& line, std::string* why) {
  PromSample s;
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s.name = line.substr(0, i);
  if (!valid_metric_name(s.name)) {
    *why = "invalid metric name '" + s.name + "'";
    return std::nullopt;
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      const size_t eq = line.find('=', i);
      if (eq == std::string::npos) {
        *why = "label without '='";
        return std::nullopt;
      }
      const std::string label = line.substr(i, eq - i);
      if (!valid_label_name(label)) {
        *why = "invalid label name '" + label + "'";
        return std::nullopt;
      }
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') {
        *why = "label value not quoted";
        return std::nullopt;
      }
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i >= line.size()) break;
          const char e = line[i++];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            *why = std::string("invalid escape \\") + e;
            return std::nullopt;
          }
        } else {
          value += c;
        }
      }
      if (!closed) {
        *why = "unterminated label value";
        return std::nullopt;
      }
      if (s.labels.count(label) != 0) {
        *why = "duplicate label '" + label + "'";
        return std::nullopt;
      }
      s.labels[label] = value;
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  if (i >= line.size() || line[i] != ' ') {
    *why = "missing value";
    return std::nullopt;
  }
  std::string rest = line.substr(i + 1);
  const auto space = rest.find(' ');
  const std::string value_text = rest.substr(0, space);
  const auto v = parse_value(value_text);
  if (!v) {
    *why = "value '" + value_text + "' is not a number";
    return std::nullopt;
  }
  s.value = *v;
  return s;
}

}  // namespace

PromParse parse_prometheus(std::string_view text) {
  PromParse out;
  std::string current;  // family whose TYPE was seen last
  std::set<std::string> typed;
  std::set<std::string> closed;  // families whose block ended: samples may not come back later
  size_t line_no = 0;
  size_t start = 0;
  const auto error = [&](const std::string& why) { out.errors.push_back("line " + std::to_string(line_no) + ": " + why); };
  if (!text.empty() && text.back() != '\n') {
    line_no = 0;
    error("text does not end with a newline");
  }
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string line(text.substr(start, end - start));
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool is_type = line[2] == 'T';
      const std::string rest = line.substr(7);
      const auto space = rest.find(' ');
      const std::string name = rest.substr(0, space);
      const std::string arg = space == std::string::npos ? "" : rest.substr(space + 1);
      if (!valid_metric_name(name)) error("invalid metric name in comment: " + name);
      if (name != current && !current.empty()) closed.insert(current);
      if (closed.count(name) != 0) error("family " + name + " declared again after other families");
      current = name;
      PromFamily& f = out.families[name];
      if (is_type) {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (kTypes.count(arg) == 0) error("unknown type '" + arg + "'");
        if (!typed.insert(name).second) error("second TYPE line for " + name);
        if (!f.samples.empty()) error("TYPE for " + name + " after its samples");
        if (arg == "counter" && !name.ends_with("_total")) error("counter " + name + " does not end in _total");
        f.type = arg;
      } else {
        f.help = arg;
      }
      continue;
    }
    if (line[0] == '#') continue;
    std::string why;
    auto sample = parse_sample(line, &why);
    if (!sample) {
      error(why + ": " + line);
      continue;
    }
    // Which family the sample belongs to: the current one, by exact name or histogram suffix.
    std::string family = sample->name;
    const PromFamily* cur = current.empty() ? nullptr : &out.families[current];
    if (cur != nullptr && cur->type == "histogram") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (sample->name == current + suffix) family = current;
      }
    }
    if (family != current) {
      error("sample " + sample->name + " outside its family's block (current: " + current + ")");
      continue;
    }
    if (out.families[family].type == "histogram" && sample->name == family + "_bucket" &&
        sample->labels.count("le") == 0) {
      error("histogram bucket without le");
    }
    out.families[family].samples.push_back(std::move(*sample));
  }
  // Histograms: every series has a +Inf bucket equal to its _count, and buckets are cumulative.
  for (const auto& [name, f] : out.families) {
    if (f.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const PromSample& s : f.samples) {
      auto labels = s.labels;
      if (s.name == name + "_bucket") {
        const auto le = parse_value(labels["le"]);
        labels.erase("le");
        if (!le) {
          out.errors.push_back(name + ": bad le");
          continue;
        }
        buckets[labels].emplace_back(*le, s.value);
      } else if (s.name == name + "_count") {
        counts[labels] = s.value;
      }
    }
    for (auto& [labels, list] : buckets) {
      std::sort(list.begin(), list.end());
      for (size_t i = 1; i < list.size(); ++i) {
        if (list[i].second < list[i - 1].second) out.errors.push_back(name + ": buckets are not cumulative");
      }
      if (list.empty() || !std::isinf(list.back().first)) {
        out.errors.push_back(name + ": no +Inf bucket");
      } else if (counts.count(labels) == 0 || counts[labels] != list.back().second) {
        out.errors.push_back(name + ": +Inf bucket differs from _count");
      }
    }
  }
  return out;
}

}  // namespace sidecar::test
