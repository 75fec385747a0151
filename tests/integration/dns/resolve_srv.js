// Resolves SRV records the way a Node (NestJS) app would: dns.promises.Resolver pointed at the agent.
// usage: node resolve_srv.js <port> <name>; prints the records as JSON, exits 1 with the error code.
'use strict';
const { Resolver } = require('dns').promises;

async function main() {
  const [port, name] = process.argv.slice(2);
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([`127.0.0.1:${port}`]);
  try {
    const records = await resolver.resolveSrv(name);
    records.sort((a, b) => a.name.localeCompare(b.name));
    console.log(JSON.stringify(records));
  } catch (err) {
    console.log(JSON.stringify({ error: err.code }));
    process.exit(1);
  }
}

main();
