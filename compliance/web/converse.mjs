// Converse.js (from npm) in headless Chromium (Debian's package, driven by playwright-core):
// logs in to xmppd over WebSocket or BOSH, sends a message to a peer and waits for its answer.
//
//   node converse.mjs --transport websocket|bosh --url URL --jid JID --password PW \
//        --peer JID --text TEXT --expect TEXT [--file-text TEXT --file-expect TEXT]
//
// With --file-text it then shares a file holding that text (HTTP File Upload, XEP-0363) and
// waits for --file-expect (the peer downloads the file and says what it read).
// With --history TEXT (instead of --text and --expect) it only opens the chat with the peer,
// as a user does on a new device, and waits until the chat shows TEXT: Converse fills the
// chat from the server's archive (XEP-0313).
// Exit status 0 when the expected answers came; otherwise 1, with the browser's log.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
    args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
const needed = ['transport', 'url', 'jid', 'password', 'peer'];
for (const k of args.history ? needed : [...needed, 'text', 'expect']) {
    if (!args[k]) {
        console.error(`missing --${k}`);
        process.exit(2);
    }
}
const WAIT = 30000;
const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules/converse.js/dist');

const config = {
    assets_path: '/dist/',
    view_mode: 'fullscreen',
    auto_login: true,
    jid: args.jid,
    password: args.password,
    discover_connection_methods: false,
    allow_non_roster_messaging: true,
    whitelisted_plugins: ['xmppd-test'],
    play_sounds: false,
    show_desktop_notifications: false,
    loglevel: 'info',
    ...(args.transport === 'websocket' ? { websocket_url: args.url } : { bosh_service_url: args.url }),
};

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>xmppd compliance</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body><script type="module">
import converse from '/dist/converse.min.js';
window.xt = { connected: false, received: [] };
converse.plugins.add('xmppd-test', {
    initialize() {
        const { api } = this._converse;
        window.xt.api = api;
        api.listen.on('connected', () => { window.xt.connected = true; });
        api.listen.on('message', (data) => {
            const body = data?.attrs?.body;
            if (body) window.xt.received.push(body);
        });
    },
});
converse.initialize(${JSON.stringify(config)});
</script></body></html>`;

// The page and Converse's files, from a server of our own on loopback (a page from file://
// could not load Converse's assets).
const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(page);
    }
    const file = path.join(dist, path.normalize(url.pathname.replace(/^\/dist\//, '')));
    if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
        res.writeHead(404);
        return res.end();
    }
    const types = { '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm' };
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const log = [];
let browser;
let status = 1;
try {
    browser = await chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox'],
    });
    const tab = await browser.newPage();
    tab.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
    tab.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
    await tab.goto(`${origin}/`);
    await tab.waitForFunction(() => window.xt && window.xt.connected, null, { timeout: WAIT });
    log.push(`logged in over ${args.transport}`);
    if (args.history) {
        await tab.evaluate(async (peer) => {
            window.xt.chat = await window.xt.api.chats.open(peer);
        }, args.peer);
        await tab.waitForFunction(
            (text) => window.xt.chat.messages.models.some((m) => m.get('body') === text),
            args.history,
            { timeout: WAIT },
        );
        log.push(`history "${args.history}"`);
        status = 0;
        throw null;
    }
    await tab.evaluate(async ({ peer, text }) => {
        const chat = await window.xt.api.chats.open(peer);
        await chat.sendMessage({ body: text });
    }, { peer: args.peer, text: args.text });
    log.push(`sent "${args.text}" to ${args.peer}`);
    await tab.waitForFunction((expect) => window.xt.received.includes(expect), args.expect, { timeout: WAIT });
    log.push(`received "${args.expect}"`);
    if (args['file-text']) {
        await tab.evaluate(async ({ peer, text }) => {
            const chat = await window.xt.api.chats.get(peer);
            await chat.sendFiles([new File([text], 'note.txt', { type: 'text/plain' })]);
        }, { peer: args.peer, text: args['file-text'] });
        log.push('shared a file');
        await tab.waitForFunction((expect) => window.xt.received.includes(expect), args['file-expect'], { timeout: WAIT });
        log.push(`received "${args['file-expect']}"`);
    }
    status = 0;
} catch (e) {
    if (e !== null) log.push(`[failure] ${e.message}`);
} finally {
    if (browser) await browser.close();
    server.close();
}
console.log(log.join('\n'));
process.exit(status);
