/**
 * The handler map's types: every action type has a handler, and each handler is given its own
 * variant. The `@ts-expect-error` lines are checked by `npm run typecheck` (an error that goes
 * away fails it); the tests compile small maps with the TypeScript compiler, so that the suite
 * proves the same without a separate type check.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { HANDLERS } from '../../src/engine/registry.js';
import type { CreateBackup, Handler, HandlerMap, PruneBackup } from '../../src/engine/types.js';

const create: Handler<CreateBackup> = async (a) => ({ summary: `backup of ${a.params.schedule}` });
const prune: Handler<PruneBackup> = async (a) => ({ summary: `pruned ${a.params.id}` });
const { prune_archive: _dropped, ...withoutPruneArchive } = HANDLERS;

// @ts-expect-error a map without a handler for prune_archive does not compile
export const missing: HandlerMap = withoutPruneArchive;
// @ts-expect-error the handler of prune_backup cannot take create_backup actions
export const wrongVariant: HandlerMap = { ...HANDLERS, create_backup: prune };
// @ts-expect-error a create_backup action has no params.id (that is prune_backup's)
export const wrongParam: Handler<CreateBackup> = async (a) => ({ summary: a.params.id });
export const right: HandlerMap = { ...HANDLERS, create_backup: create, prune_backup: prune };

const TYPES = resolve('src/engine/types.ts').replace(/\.ts$/, '.js');

let previous: ts.Program | undefined;

/** The error codes of compiling `body` (after an import of the engine's types) as strict TypeScript. */
async function compileErrors(dir: string, body: string): Promise<number[]> {
  const file = join(dir, 'map.ts');
  await writeFile(file, `import type { Handler, HandlerMap, CreateBackup, PruneBackup, ActionType } from ${JSON.stringify(TYPES)};\n${body}\n`);
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'],
  }, undefined, previous); // the engine's files are parsed once
  previous = program;
  return ts.getPreEmitDiagnostics(program).map((d) => d.code);
}

const handler = (type: string, variant = 'Handler') => `  ${type}: (async () => ({ summary: 'ok' })) as ${variant},`;
const map = (types: readonly string[], extra = '') => `export const map: HandlerMap = {\n${types.map((k) => handler(k)).join('\n')}\n${extra}};`;
const ALL = Object.keys(HANDLERS);

t.test('a map with a handler of its own variant for every action type compiles; one missing a type, or with another variant, does not', async (t) => {
  const dir = t.testdir();
  t.same(await compileErrors(dir, map(ALL)), [], 'every type has its handler');
  t.same(await compileErrors(dir, map(ALL.filter((k) => k !== 'prune_archive'))), [2741], 'prune_archive has no handler: TS2741');
  t.same(await compileErrors(dir, map(ALL.filter((k) => k !== 'create_backup'), handler('create_backup', 'Handler<PruneBackup>'))), [2322], 'the prune_backup handler given create_backup actions: TS2322');
});
