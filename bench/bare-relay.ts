/**
 * The ceiling for any Node.js relay on this machine, measured beside the gateway: a TCP relay
 * that does nothing but copy bytes both ways (no authentication, inspection or recording).
 * Run as its own process: `node dist-bench/bench/bare-relay.js LISTEN_PORT TARGET_PORT`; prints
 * `ready` once it listens.
 */
import net from "node:net";

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
const server = net.createServer((client) => {
  client.setNoDelay(true);
  const target = net.connect({ host: "127.0.0.1", port: targetPort as number });
  target.setNoDelay(true);
  client.pipe(target);
  target.pipe(client);
  client.on("error", () => target.destroy());
  target.on("error", () => client.destroy());
});
server.listen(listenPort, "127.0.0.1", () => process.stdout.write("ready\n"));
// Exit (rather than die) on the bench's SIGTERM, so a --cpu-prof profile is written.
process.on("SIGTERM", () => process.exit(0));
