#include "agent/core/registration.hpp"

#include <cassert>

// The registration's key set as reloads and health change it: values rewritten in place, keys added and
// removed on the running lease, keys published and withdrawn (and the deletes that withdrawal takes).
// The lease and write/watch side is in registration.cpp.
namespace sidecar::core {

Actions Registration::update_values(const std::vector<std::string>& values, TimePoint) {
  Actions out;
  assert(values.size() == keys_.size());
  for (size_t i = 0; i < keys_.size(); ++i) {
    Key& key = keys_[i];
    if (key.desired.value == values[i]) continue;
    key.desired.value = values[i];
    if (lease_state_ != LeaseState::kAlive) continue;  // written with the next lease
    if (!key.published) continue;  // written with its new value when published again
    if (key.state == KeyState::kRegistered || key.state == KeyState::kWriting) {
      schedule_write(i, key.state == KeyState::kRegistered ? key.mod_revision : 0, out);
    }
  }
  return out;
}

Actions Registration::update_value(size_t index, std::string value, TimePoint) {
  Actions out;
  Key& key = keys_[index];
  if (key.desired.value == value) return out;
  key.desired.value = std::move(value);
  if (lease_state_ != LeaseState::kAlive || !key.published) return out;  // written with the new value later
  if (key.state == KeyState::kRegistered) {
    schedule_write(index, key.mod_revision, out);  // in place: compare on our own mod_revision, same lease
  } else if (key.state == KeyState::kWriting) {
    // The write in flight carries the old value; a fresh create-only attempt supersedes it. Its rejection
    // shows our old value on our lease, which decide() then overwrites with the new one.
    schedule_write(index, 0, out);
  }
  return out;
}

Actions Registration::add_key(DesiredKey desired, TimePoint now, size_t* index) {
  Actions out;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].desired.key != desired.key) continue;
    Key& key = keys_[i];
    *index = i;
    if (!key.removed) {
      // Already live: the caller's bookkeeping is off; treat as an update, never as a second key.
      out = update_value(i, std::move(desired.value), now);
      out.merge(set_published(i, desired.published, now, "added again"));
      return out;
    }
    key.removed = false;
    key.desired.value = std::move(desired.value);
    key.restore_reason.clear();
    key.ever_registered = false;  // logged as "registered" again
    if (!desired.published) return out;  // stays withdrawn (its pending delete goes on) until published
    if (key.state == KeyState::kWriting && lease_state_ == LeaseState::kAlive) {
      key.published = true;
      key.delete_wanted = false;
      key.delete_in_flight = false;
      schedule_write(i, 0, out);  // supersedes the write in flight, which may carry the old value
      return out;
    }
    return set_published(i, true, now, "added");
  }
  *index = keys_.size();
  Key& key = keys_.emplace_back();
  key.desired = std::move(desired);
  key.write_backoff = Backoff(options_.write_backoff);
  key.conflict_backoff = Backoff(options_.conflict_backoff);
  key.published = key.desired.published;
  key.state = key.published ? KeyState::kPending : KeyState::kWithdrawn;
  if (key.published && lease_state_ == LeaseState::kAlive) schedule_write(*index, 0, out);
  return out;
}

Actions Registration::remove_key(size_t index, TimePoint now) {
  Key& key = keys_[index];
  if (key.removed) return {};
  Actions out = set_published(index, false, now, "removed from the manifest");
  key.removed = true;
  return out;
}

Actions Registration::set_published(size_t index, bool published, TimePoint now, const std::string& reason) {
  Actions out;
  Key& key = keys_[index];
  if (key.published == published) return out;
  if (key.removed && published) return out;  // a tombstone is never published again (add_key revives it)
  key.published = published;
  const std::string why = reason.empty() ? std::string() : " (" + reason + ")";
  if (!published) {
    out.notes.push_back({LogNote::Level::kInfo, "withdrawing " + key.desired.key + why +
                                                    (lease_state_ == LeaseState::kAlive ? "; lease " + lease_hex() + " kept" : "")});
    key.restore_reason.clear();
    key.conflict_lease = 0;
    switch (key.state) {
      case KeyState::kRegistered:
        request_delete(index, lease_, out);
        break;
      case KeyState::kWriting:
        break;  // the write's answer decides: a key it wrote is deleted then
      case KeyState::kPending:
      case KeyState::kConflict:
      case KeyState::kWithdrawn:
        key.state = KeyState::kWithdrawn;
        key.retry_at.reset();
        break;
    }
    if (lease_state_ == LeaseState::kAlive) check_ready(out);
    return out;
  }
  // Published again. A delete still in flight is overtaken: its answer is dropped, and the create-only write
  // either finds the old value (ours: registered) or writes it; a delete landing after that is restored by
  // the own-key watch like any other.
  if (key.state == KeyState::kWriting) return out;  // the pending write now counts as the publish
  key.delete_wanted = false;
  key.delete_in_flight = false;
  key.retry_at.reset();
  ++key.attempt;
  key.restore_reason = reason.empty() ? "published" : reason;
  if (lease_state_ == LeaseState::kAlive) {
    schedule_write(index, 0, out);
  } else {
    key.state = KeyState::kPending;  // written when the lease is granted
  }
  (void)now;
  return out;
}

Actions Registration::on_delete_result(size_t index, const DeleteOutcome& outcome, TimePoint now, double random01) {
  Actions out;
  Key& key = keys_[index];
  if (outcome.attempt != key.attempt || key.published || !key.delete_in_flight) return out;
  key.delete_in_flight = false;
  switch (outcome.kind) {
    case DeleteOutcome::Kind::kDeleted:
      key.delete_wanted = false;
      key.write_backoff.reset();
      key.known_revision = std::max(key.known_revision, outcome.revision);
      out.notes.push_back({LogNote::Level::kInfo, "withdrew " + key.desired.key + " (deleted from lease " +
                                                      lease_to_hex(key.delete_lease) + ")"});
      break;
    case DeleteOutcome::Kind::kNotOurs:
      key.delete_wanted = false;
      key.write_backoff.reset();
      break;
    case DeleteOutcome::Kind::kFailed: {
      const bool first_failure = key.write_backoff.attempts() == 0;
      key.retry_at = now + key.write_backoff.next(random01);
      if (first_failure) {
        out.notes.push_back({LogNote::Level::kWarn, "cannot delete withdrawn " + key.desired.key + ": " + outcome.error +
                                                        "; retrying with backoff"});
      }
      break;
    }
  }
  return out;
}


}  // namespace sidecar::core
