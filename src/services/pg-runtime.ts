/**
 * pg asks whether it runs on Cloudflare Workers when its stream module loads: with no
 * `navigator` (Node 20 has none; Node 21+ does) it builds a fetch `Response`, which loads
 * undici, ~20 ms of every start of a command that talks to PostgreSQL. Loading that module once
 * here, with the `navigator` Node 21+ would have, gives pg its Node streams without it. The CLI
 * imports this first; later imports of pg reuse the loaded module.
 */
import { createRequire } from 'node:module';

const runtime = globalThis as { navigator?: unknown };
if (runtime.navigator === undefined) {
  runtime.navigator = { userAgent: `Node.js/${process.versions.node.split('.')[0]}` };
  try {
    createRequire(import.meta.url)('pg/lib/stream.js');
  } catch {
    // pg moved its stream module: it then pays for the Response itself, nothing breaks.
  } finally {
    delete runtime.navigator;
  }
}
