// Gets a certificate with node acme-client (the npm package) in auto mode,
// answering http-01 through pebble-challtestsrv's management API.
//   node node-acme-client.js DIRECTORY_URL CHALLTESTSRV_URL NAME OUT_DIR
// Trust for the ACME server comes from NODE_EXTRA_CA_CERTS. Writes
// OUT_DIR/fullchain.pem and OUT_DIR/events.log, exits non-zero on failure.
const fs = require('fs');
const path = require('path');
const http = require('http');
const acme = require('acme-client');

const [directoryUrl, ctsUrl, name, outDir] = process.argv.slice(2);
const events = [];

function post(url, body) {
    return new Promise((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = http.request(url, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${url}: ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(data);
    });
}

(async () => {
    const client = new acme.Client({ directoryUrl, accountKey: await acme.crypto.createPrivateKey() });
    const [, csr] = await acme.crypto.createCsr({ altNames: [name] });
    const cert = await client.auto({
        csr,
        email: 'compat@example.com',
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        // The name only resolves through the challenge server's DNS, which
        // the CA asks; the client cannot check its own answer.
        skipChallengeVerification: true,
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
            events.push(`create ${challenge.type} ${authz.identifier.value}`);
            await post(`${ctsUrl}/add-http01`, { token: challenge.token, content: keyAuthorization });
        },
        challengeRemoveFn: async (authz, challenge) => {
            events.push(`remove ${challenge.type} ${authz.identifier.value}`);
            await post(`${ctsUrl}/del-http01`, { token: challenge.token });
        },
    });
    fs.writeFileSync(path.join(outDir, 'fullchain.pem'), cert);
    fs.writeFileSync(path.join(outDir, 'events.log'), events.join('\n') + '\n');
})().catch((e) => {
    fs.writeFileSync(path.join(outDir, 'events.log'), events.join('\n') + '\n');
    console.error(`node acme-client failed: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
});
