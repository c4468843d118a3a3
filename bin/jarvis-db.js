#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm run build`, run by `prepare`).
import('../dist/cli/main.js').then((cli) => cli.main(process.argv)).catch((error) => {
  process.stderr.write(`jarvis-db: cannot start: ${error && error.message ? error.message : error}\n`);
  process.stderr.write('Run `npm run build` (or `npm ci`, which builds) in the jarvis-db folder.\n');
  process.exit(1);
});
