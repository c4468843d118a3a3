/**
 * Loaded into every test process by .taprc (`node-arg`), after tap's own imports.
 *
 * tap imports @tapjs/processinfo into each test process, and through process-on-spawn it adds
 * `--import=…/@tapjs/processinfo/…/import.mjs` to NODE_OPTIONS of every process a test starts: the
 * compiled CLI, `chroma run`, s3rver, the sandbox watchdog, and (through them) their children.
 * Coverage is off (.taprc), so what it records buys nothing, and it costs twice over:
 *  - about 0.45 s of CPU per child node process (its module hooks run in a loader thread): a
 *    `jarvis-db validate` takes 0.7 s of CPU instead of 0.25 s;
 *  - it installs a JavaScript SIGTERM handler (signal-exit), which `chroma run` never runs: its
 *    main thread stays in the Rust server, so the server ignores SIGTERM and every stop of a
 *    sandbox Chroma waited the full 10 s grace before SIGKILL. Without it SIGTERM ends Chroma at
 *    once, as it does outside the tests.
 * This listener runs after processinfo's and takes its import back out of the child's
 * NODE_OPTIONS (anything else in NODE_OPTIONS stays). The test process itself is unchanged.
 */
const state = globalThis[Symbol.for('process-on-spawn@*:singletonId')];
const OURS = /(^|\s)"?--(?:import|loader|experimental-loader)=[^\s"]*@tapjs[\\/]processinfo[^\s"]*"?(?=\s|$)/g;

if (state && Array.isArray(state.listeners)) {
  state.listeners.push((options) => {
    const env = options.env;
    if (typeof env.NODE_OPTIONS !== 'string' || !env.NODE_OPTIONS.includes('processinfo')) return;
    const rest = env.NODE_OPTIONS.replace(OURS, '').trim();
    if (rest) env.NODE_OPTIONS = rest;
    else delete env.NODE_OPTIONS;
  });
}
