#include "agent/etcd/client.hpp"

#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <mutex>

namespace sidecar::etcd {

std::optional<EndpointTarget> parse_endpoint(const std::string& endpoint, std::string* error) {
  std::string rest = endpoint;
  bool tls = false;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    tls = true;
  } else if (rest.find("://") != std::string::npos) {
    if (error) *error = "unsupported scheme in endpoint " + endpoint;
    return std::nullopt;
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find(':') == std::string::npos) {
    if (error) *error = "endpoint needs host:port: " + endpoint;
    return std::nullopt;
  }
  return EndpointTarget{rest, tls};
}

std::optional<std::string> grpc_target(const std::string& endpoint, std::string* error) {
  auto parsed = parse_endpoint(endpoint, error);
  if (!parsed) return std::nullopt;
  return parsed->target;
}

bool is_transient(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return true;
    default:
      // etcd answers "etcdserver: no leader" and "etcdserver: request timed out" as UNAVAILABLE in 3.4;
      // match the text too for members that say it otherwise.
      // A TLS connection cut under a stream ends it with UNKNOWN "No status received".
      return status.error_message().find("no leader") != std::string::npos ||
             status.error_message().find("No status received") != std::string::npos;
  }
}

namespace {

constexpr milliseconds kTlsRecheckInterval{1000};
constexpr milliseconds kAuthenticateTimeout{5000};  // bcrypt on the server; slow members take a while

}  // namespace

// gRPC's own log lines ("Handshake failed with fatal error ...") go to stderr on every reconnect attempt,
// i.e. up to several times a second while a certificate is wrong. The client already says what is wrong,
// once per change; gRPC's detail goes to the debug log instead.
static void route_grpc_log(gpr_log_func_args* args) {
  spdlog::debug("grpc {}:{}: {}", args->file ? args->file : "?", args->line, args->message ? args->message : "");
}

Client::Client(asio::io_context& io, ClientOptions options)
    : io_(io), options_(std::move(options)), bridge_(io), auth_(options_.auth.enabled()) {
  static std::once_flag routed;
  std::call_once(routed, [] { gpr_set_log_function(route_grpc_log); });
}

std::unique_ptr<Client> Client::create(asio::io_context& io, ClientOptions options, std::string* error) {
  if (options.endpoints.empty()) {
    if (error) *error = "no etcd endpoints";
    return nullptr;
  }
  std::vector<EndpointTarget> targets;
  bool any_tls = false;
  for (const auto& ep : options.endpoints) {
    auto target = parse_endpoint(ep, error);
    if (!target) return nullptr;
    any_tls = any_tls || target->tls;
    targets.push_back(*target);
  }
  if (options.keepalive_reply_timeout.count() == 0) {
    options.keepalive_reply_timeout = std::max(options.request_timeout, milliseconds(1500));
  }
  std::unique_ptr<Client> client(new Client(io, std::move(options)));
  if (any_tls) {
    // Unreadable files at start are a configuration error, said once with the file's name.
    client->tls_ = load_tls(client->options_.tls, error);
    if (!client->tls_) return nullptr;
    client->tls_checked_at_ = std::chrono::steady_clock::now();
  }
  for (const auto& target : targets) {
    Endpoint ep;
    ep.target = target.target;
    ep.tls = target.tls;
    client->connect(ep);
    client->endpoints_.push_back(std::move(ep));
  }
  return client;
}

void Client::connect(Endpoint& ep) {
  grpc::ChannelArguments args;
  // Reconnect quickly: a restarted etcd should be picked up within about a second.
  const int max_backoff = static_cast<int>(options_.reconnect_backoff_max.count());
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff);
  // HTTP/2 pings find a black-holed connection; etcd refuses pings more often than every 5 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  // BDP probing sends a ping (and arms timers) after reads to size flow-control windows for bulk
  // transfers. The agent's steady traffic is a keepalive every few seconds; with probing the idle agent
  // spent about a third of its CPU in gRPC's timer threads (schedstat: 15.2 -> 11.1 ms per 40 s).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // One channel per endpoint, never shared with another Client through gRPC's global subchannel pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  // No transparent retries: every caller has its own backoff and failover already. Also, gRPC 1.51's retry
  // filter asserts (aborting the process) on a stream whose TLS connection is cut before the trailers
  // arrive, which is exactly what an etcd restart does to every open watch and keepalive stream.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  std::shared_ptr<grpc::ChannelCredentials> creds =
      ep.tls ? grpc::SslCredentials(tls_->ssl) : grpc::InsecureChannelCredentials();
  ep.channel = grpc::CreateCustomChannel(ep.target, creds, args);
  ep.stubs.kv = pb::KV::NewStub(ep.channel);
  ep.stubs.lease = pb::Lease::NewStub(ep.channel);
  ep.stubs.watch = pb::Watch::NewStub(ep.channel);
  ep.stubs.maintenance = pb::Maintenance::NewStub(ep.channel);
  ep.stubs.auth = pb::Auth::NewStub(ep.channel);
}

bool Client::reload_tls(std::string* error) {
  if (!tls_) return true;  // no https:// endpoint
  tls_checked_at_ = std::chrono::steady_clock::now();
  auto fresh = load_tls(options_.tls, error);
  if (!fresh) return false;
  if (fresh->fingerprint == tls_->fingerprint) return true;
  tls_ = std::move(fresh);
  // New channels for new calls; calls and streams in flight keep their old channel (their ClientContext
  // holds it) until they end, and reopen on the new one.
  for (auto& ep : endpoints_) {
    if (ep.tls) connect(ep);
  }
  tls_problem_.clear();
  spdlog::info("etcd TLS files changed on disk; new connections use them");
  return true;
}

void Client::maybe_reload_tls() {
  if (!tls_ || std::chrono::steady_clock::now() - tls_checked_at_ < kTlsRecheckInterval) return;
  std::string error;
  if (!reload_tls(&error)) {
    // Probably mid-replacement; keep the old material and look again at the next failure.
    spdlog::warn("etcd TLS files: {}; keeping the previous ones", error);
  }
}

Client::~Client() {
  // The io_context has stopped by now; cancel whatever a caller left behind so the queue can drain.
  for (auto* ctx : inflight_) ctx->TryCancel();
  for (auto& weak : streams_) {
    if (auto s = weak.lock()) s->cancel();
  }
  bridge_.shutdown();
}

void Client::prepare(grpc::ClientContext& ctx, milliseconds timeout) const {
  const auto t = timeout.count() > 0 ? timeout : options_.request_timeout;
  ctx.set_deadline(std::chrono::system_clock::now() + t);
  // Fail fast while the channel is down: the caller's backoff decides when to retry, not gRPC's.
  ctx.set_wait_for_ready(false);
}

void Client::track(const std::shared_ptr<StreamBase>& stream) {
  streams_.remove_if([](const std::weak_ptr<StreamBase>& w) { return w.expired(); });
  streams_.push_back(stream);
  if (stopping_) stream->cancel();
}

template <class Stream, class PrepareFn>
std::shared_ptr<Stream> Client::open_stream(PrepareFn prepare_call, milliseconds reply_timeout) {
  auto opener = [this, prepare_call](Stream& stream, std::function<void(const grpc::Status&)> ready) {
    with_token([this, &stream, prepare_call, ready](const grpc::Status& auth) {
      if (!auth.ok() || stopping_) {
        ready(auth.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "client shut down") : auth);
        return;
      }
      Endpoint& ep = endpoints_[current_];
      // A member cut off from the quorum must not serve the stream: a watch would never see new events,
      // a keepalive could not reach the leader.
      stream.context().AddMetadata("hasleader", "true");
      if (!auth_.token().empty()) stream.context().AddMetadata("token", auth_.token());
      stream.attach(ep.target, prepare_call(ep, &stream.context(), bridge_.cq()));
      ready(grpc::Status::OK);
    });
  };
  auto stream = std::make_shared<Stream>(io_, std::move(opener));
  stream->set_reply_timeout(reply_timeout);
  track(stream);
  return stream;
}

std::shared_ptr<WatchStream> Client::new_watch_stream() {
  return open_stream<WatchStream>(
      [](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
        return ep.stubs.watch->PrepareAsyncWatch(ctx, cq);
      },
      milliseconds(0));
}

std::shared_ptr<KeepAliveStream> Client::new_keepalive_stream() {
  return open_stream<KeepAliveStream>(
      [](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
        return ep.stubs.lease->PrepareAsyncLeaseKeepAlive(ctx, cq);
      },
      options_.keepalive_reply_timeout);
}

void Client::report_failure(const std::string& endpoint, const grpc::Status& status) {
  if (stopping_) return;
  if (tls_ && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    bool never_answered = true;
    for (const auto& ep : endpoints_) {
      if (ep.target == endpoint) never_answered = !ep.answered;
    }
    if (auto why = explain_tls_failure(status, options_.tls, never_answered)) {
      if (*why != tls_problem_) spdlog::error("etcd {}: {}", endpoint, *why);
      tls_problem_ = *why;
    }
    // Maybe the certificates were replaced on disk (and the server's with them): pick them up now.
    maybe_reload_tls();
  }
  if (endpoints_.size() < 2 || !is_transient(status)) return;
  if (endpoints_[current_].target != endpoint) return;  // already moved on
  current_ = (current_ + 1) % endpoints_.size();
  spdlog::info("etcd endpoint {} failed ({}); switching to {}", endpoint, status.error_message(),
               endpoints_[current_].target);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // The member is unreachable or hung: the other streams on it would only find out from HTTP/2 pings
    // (up to 8 s later). Cancel them now; their owners reopen them on the member we just moved to.
    for (auto& weak : streams_) {
      auto s = weak.lock();
      if (s && s->endpoint() == endpoint) s->cancel();
    }
  }
}

void Client::mark_answered(const std::string& target) {
  for (auto& ep : endpoints_) {
    if (ep.target == target) ep.answered = true;
  }
}

// ------------------------------------------------------------------------------------------------ unary calls

void Client::run(std::shared_ptr<detail::UnaryOp> op) {
  if (stopping_) {
    asio::post(io_, [op = std::move(op)] {
      op->complete(grpc::Status(grpc::StatusCode::CANCELLED, "client shut down"));
    });
    return;
  }
  with_token([this, op = std::move(op)](const grpc::Status& auth) mutable {
    if (!auth.ok()) {
      op->complete(auth);
      return;
    }
    send(std::move(op));
  });
}

void Client::send(std::shared_ptr<detail::UnaryOp> op) {
  // One attempt: a ClientContext cannot be reused, so a retry gets a new one.
  struct Attempt {
    grpc::ClientContext ctx;
    grpc::Status status;
    std::string endpoint;
    std::string token;
  };
  auto attempt = std::make_unique<Attempt>();
  Endpoint& ep = endpoints_[current_];
  attempt->endpoint = ep.target;
  attempt->token = auth_.token();
  prepare(attempt->ctx, op->timeout());
  if (!attempt->token.empty()) attempt->ctx.AddMetadata("token", attempt->token);
  Attempt* raw = attempt.get();
  inflight_.insert(&raw->ctx);
  auto done = [this, attempt = std::move(attempt), op, work = asio::make_work_guard(io_)](bool) mutable {
    inflight_.erase(&attempt->ctx);
    if (!attempt->status.ok() && options_.auth.enabled() && op->may_retry() && !stopping_ &&
        is_auth_token_error(attempt->status)) {
      // Expired token (simple tokens live 300 s by default) or the auth store moved on: authenticate again
      // and send the same request once more.
      op->mark_retried();
      drop_token(attempt->token);
      run(std::move(op));
      return;
    }
    if (!attempt->status.ok()) {
      report_failure(attempt->endpoint, attempt->status);
    } else {
      mark_answered(attempt->endpoint);
    }
    op->complete(std::move(attempt->status));
  };
  op->start(ep.stubs, raw->ctx, bridge_.cq(), &raw->status, make_tag(std::move(done)));
}

// ------------------------------------------------------------------------------------------------ auth

void Client::with_token(TokenWaiter then) {
  using Action = core::AuthToken::CallAction;
  switch (auth_.on_call(std::chrono::steady_clock::now())) {
    case Action::kSend:
      then(grpc::Status::OK);
      return;
    case Action::kFail:
      // Inside the backoff after a refused password: fail at once, without asking etcd again.
      asio::post(io_, [then = std::move(then), refusal = auth_.refusal()] {
        then(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, refusal));
      });
      return;
    case Action::kWait:
      token_waiters_.push_back(std::move(then));
      return;
    case Action::kAuthenticate:
      token_waiters_.push_back(std::move(then));
      authenticate();
      return;
  }
}

void Client::authenticate() {
  std::string error;
  auto password = read_password(options_.auth, &error);
  if (!password) {
    // Post: the waiters must not run inside the call that registered them.
    asio::post(io_, [this, error] {
      finish_authentication(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                         "authentication failed for user " + options_.auth.username + ": " + error),
                            {});
    });
    return;
  }
  pb::AuthenticateRequest request;
  request.set_name(options_.auth.username);
  request.set_password(std::move(*password));
  // Sent once (`once`), so the request and the password in it are dropped as soon as gRPC serialised them.
  send(detail::make_unary_op(&Stubs::auth, &pb::Auth::Stub::PrepareAsyncAuthenticate, std::move(request),
                             std::max(options_.request_timeout, kAuthenticateTimeout), true,
                             [this](RpcResult<pb::AuthenticateResponse> result) {
                               finish_authentication(result.status, std::move(*result.response.mutable_token()));
                             }));
}

void Client::finish_authentication(const grpc::Status& status, std::string token) {
  const std::string& user = options_.auth.username;
  core::AuthReply reply = core::AuthReply::kUnavailable;
  std::string detail;
  if (status.ok()) {
    reply = core::AuthReply::kToken;
    detail = std::move(token);
  } else if (is_auth_not_enabled(status)) {
    reply = core::AuthReply::kAuthDisabled;
  } else if (is_bad_credentials(status) || status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    // Wrong user or password (or an unreadable password source). The password is read again next time.
    reply = core::AuthReply::kRefused;
    detail = status.error_message();
    if (detail.rfind("authentication failed for user", 0) != 0) {
      detail = "authentication failed for user " + user + " (" + detail + ")";
    }
  }
  const core::AuthToken::Outcome outcome =
      auth_.on_authenticated(reply, std::move(detail), std::chrono::steady_clock::now());
  // Unavailable (etcd unreachable, no leader, deadline): nothing about the credentials. The callers get
  // the transport's reason, back off and retry, which authenticates again (on the next member if
  // report_failure moved on).
  grpc::Status result = status;
  if (outcome.calls_may_proceed) {
    if (outcome.warn_auth_disabled) {
      spdlog::warn("etcd authentication is not enabled on the server; continuing without a token as user {}", user);
    }
    if (outcome.announce) {
      spdlog::info("authenticated to etcd as user {}", user);
    } else {
      spdlog::debug("authenticated to etcd as user {}", user);
    }
    result = grpc::Status::OK;
  } else if (reply == core::AuthReply::kRefused) {
    result = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, auth_.refusal());
    if (outcome.new_refusal) {
      spdlog::error("etcd: {}; retrying with backoff (up to {} s)", auth_.refusal(),
                    core::AuthToken::kBackoffMax.count() / 1000);
    }
  }
  auto waiters = std::move(token_waiters_);
  token_waiters_.clear();
  for (auto& waiter : waiters) waiter(result);
}

void Client::drop_token(const std::string& used) {
  if (auth_.on_token_rejected(used)) {
    spdlog::info("etcd rejected the auth token of user {}; authenticating again", options_.auth.username);
  }
}

void Client::shutdown() {
  stopping_ = true;
  for (auto* ctx : inflight_) ctx->TryCancel();
  for (auto& weak : streams_) {
    if (auto s = weak.lock()) s->cancel();
  }
}

}  // namespace sidecar::etcd
