/**
 * The configuration reference (docs/config.md), written from the JSON Schema so that it can
 * never say something the validator does not enforce. Pure: schema in, markdown out.
 * `npm run docs` writes the file; a test fails when it is out of date.
 */

type Schema = Record<string, unknown>;

interface Row { path: string; type: string; description: string }

/** How a `$defs` entry is named in the type column. */
const DEF_TYPES: Record<string, string> = {
  duration: 'duration (`30s 15m 12h 7d 2w 6mo 2y`)',
  name: 'name',
  identifier: 'table name',
  column: 'column name',
  envName: 'environment variable name',
  url: 'URL',
  thresholdValue: 'number or `"< x"`',
};

function refName(node: Schema): string | undefined {
  const ref = node.$ref;
  return typeof ref === 'string' ? ref.replace(/^.*#\/\$defs\//, '') : undefined;
}

function resolveNode(root: Schema, node: Schema): Schema {
  const name = refName(node);
  if (!name) return node;
  const defs = root.$defs as Record<string, Schema>;
  const target = defs[name] ?? {};
  // The referencing node's own description wins: it says what this field is for.
  return { ...resolveNode(root, target), ...(node.description ? { description: node.description } : {}) };
}

function typeOf(root: Schema, node: Schema): string {
  const name = refName(node);
  if (name && DEF_TYPES[name]) return DEF_TYPES[name]!;
  const resolved = resolveNode(root, node);
  if ('const' in resolved) return `\`${JSON.stringify(resolved.const)}\``;
  if (Array.isArray(resolved.enum)) return resolved.enum.map((v) => (v === null ? 'a bare YAML null' : `\`${String(v)}\``)).join(' \\| ');
  if (Array.isArray(resolved.anyOf) || Array.isArray(resolved.oneOf)) {
    const branches = ((resolved.anyOf ?? resolved.oneOf) as Schema[]).map((b) => typeOf(root, b));
    return [...new Set(branches)].join(' or ');
  }
  const type = resolved.type;
  if (type === 'array') {
    const items = (resolved.items ?? {}) as Schema;
    const itemResolved = resolveNode(root, items);
    return itemResolved.type === 'object' ? 'list of mappings' : `list of ${typeOf(root, items)}`;
  }
  if (type === 'object') return 'mapping';
  if (type === 'integer') {
    const min = resolved.minimum;
    const max = resolved.maximum;
    return min !== undefined && max !== undefined ? `integer ${String(min)}–${String(max)}` : 'integer';
  }
  if (Array.isArray(type)) return type.join(' or ');
  return typeof type === 'string' ? type : 'any';
}

function walk(root: Schema, node: Schema, path: string, rows: Row[], required: boolean, listItem = false): void {
  const resolved = resolveNode(root, node);
  const description = typeof resolved.description === 'string' ? resolved.description : '';
  if (path && !listItem) rows.push({ path, type: typeOf(root, node) + (required ? ' (required)' : ''), description });
  if (resolved.type === 'array') {
    const items = resolveNode(root, (resolved.items ?? {}) as Schema);
    if (items.type === 'object') walk(root, items, `${path}[]`, rows, false, true);
    return;
  }
  if (resolved.type !== 'object') return;
  const needed = new Set(Array.isArray(resolved.required) ? (resolved.required as string[]) : []);
  const properties = (resolved.properties ?? {}) as Record<string, Schema>;
  for (const [key, child] of Object.entries(properties)) walk(root, child, path ? `${path}.${key}` : key, rows, needed.has(key));
  const extra = resolved.additionalProperties;
  if (extra && typeof extra === 'object') walk(root, extra as Schema, `${path}.<name>`, rows, false);
}

/** The whole reference as markdown: one table row per field, in schema order. */
export function configReference(schema: Schema): string {
  const rows: Row[] = [];
  walk(schema, schema, '', rows, false);
  const policy = (schema.$defs as Record<string, Schema>).policyFile;
  const policyRows: Row[] = [];
  if (policy) walk(schema, policy, '', policyRows, false);
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const table = (list: Row[]) => [
    '| field | type | what it means |',
    '|---|---|---|',
    ...list.filter((r) => r.path !== '').map((r) => `| \`${r.path.replace(/\|/g, '\\|')}\` | ${r.type} | ${cell(r.description)} |`),
  ].join('\n');
  return [
    '# Configuration reference',
    '',
    '<!-- Written by `npm run docs` from schemas/jarvis-db.schema.json; a test fails when it is out of date. Do not edit by hand. -->',
    '',
    typeof schema.description === 'string' ? schema.description : '',
    '',
    'Every mapping refuses keys it does not know. `examples/full.yaml` shows every option with comments.',
    '',
    '## jarvis-db.yaml',
    '',
    table(rows),
    '',
    '## Policy files (`retention.include`)',
    '',
    table(policyRows),
    '',
  ].join('\n');
}
