// `npm start` / `npm run migrate` / `npm run verify-ledger`: build dist/ when it is missing or older
// than src/, then run the compiled entry point IN THIS PROCESS. One process means the signals a
// supervisor sends (`kill -TERM`, Ctrl-C) reach the server itself, with no wrapper to forward them;
// package.json `exec`s this file so npm's shell does not stay in between either.
// Deployments run `node dist/main.js` directly after `npm run build`.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DIST, build, isStale } from './build.mjs';

const entry = process.argv[2] ?? 'main';
const target = path.join(DIST, `${entry}.js`);
// The entry point reads its own flags from process.argv (parseArgs): it must see what
// `node dist/<entry>.js <flags>` would give it, not this launcher's entry name before them.
process.argv.splice(1, 2, target);

if (await isStale()) await build({ quiet: true });
process.setSourceMapsEnabled(true); // stack traces name src/*.ts lines
await import(pathToFileURL(target).href);
