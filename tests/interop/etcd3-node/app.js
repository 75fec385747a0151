// A stand-in for a NestJS service that registers and discovers itself the way such apps usually do, with
// the `etcd3` npm library: a lease, a JSON value under /services/<name>/<id>, a prefix watch.
// Usage: node app.js <etcd host:port> <name> <id> <port> <service to discover>
// Prints one JSON object per line on stdout: {"event":"registered"}, {"event":"snapshot","keys":{...}},
// {"event":"put","key":...,"value":...}, {"event":"delete","key":...}. SIGTERM revokes the lease and exits 0.
'use strict';
const { Etcd3 } = require('etcd3');

const [endpoint, name, id, port, discover] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

async function main() {
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  const lease = client.lease(10, { autoKeepAlive: true });
  lease.on('lost', (err) => print({ event: 'lease-lost', error: String(err) }));
  await lease.put(`/services/${name}/${id}`).value(JSON.stringify({ address: '127.0.0.1', port: Number(port) }));
  print({ event: 'registered', lease: (await lease.grant()).toString() });

  const prefix = `/services/${discover}/`;
  const watcher = await client.watch().prefix(prefix).create();
  watcher.on('put', (kv) => print({ event: 'put', key: kv.key.toString(), value: kv.value.toString() }));
  watcher.on('delete', (kv) => print({ event: 'delete', key: kv.key.toString() }));
  print({ event: 'snapshot', keys: await client.getAll().prefix(prefix).strings() });

  const stop = async () => {
    await watcher.cancel();
    await lease.revoke();
    client.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => { stop().catch((e) => { print({ event: 'error', error: String(e) }); process.exit(1); }); });
}

main().catch((err) => {
  print({ event: 'error', error: String(err) });
  process.exit(1);
});
