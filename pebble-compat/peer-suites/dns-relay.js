// Stand-in for the CoreDNS that node-acme-client's CI runs on 127.53.53.53:53
// (the only resolver in its /etc/resolv.conf, and Pebble's -dnsserver). It
// relays every query, bytes untouched, over UDP and TCP to the challenge
// server's DNS port. Offline there is nothing to forward other zones to, and
// CI's static example.com zone (SOA/NS) is not reproduced.
//   node dns-relay.js LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
const dgram = require('dgram');
const net = require('net');

const [host, port, upHost, upPort] = process.argv.slice(2);

const udp = dgram.createSocket('udp4');
udp.on('message', (msg, client) => {
    // One upstream socket per query, so answers find their way back.
    const up = dgram.createSocket('udp4');
    const timer = setTimeout(() => up.close(), 10000);
    up.on('message', (answer) => {
        clearTimeout(timer);
        up.close();
        udp.send(answer, client.port, client.address);
    });
    up.on('error', () => up.close());
    up.send(msg, Number(upPort), upHost);
});
udp.bind(Number(port), host);

net.createServer((conn) => {
    const up = net.connect(Number(upPort), upHost);
    conn.pipe(up).pipe(conn);
    conn.on('error', () => up.destroy());
    up.on('error', () => conn.destroy());
}).listen(Number(port), host);
