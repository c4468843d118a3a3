// `npm run docs`: writes docs/config.md from the JSON Schema (build first: it uses dist/).
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference } from '../dist/config/reference.js';

const schema = JSON.parse(readFileSync(new URL('../schemas/jarvis-db.schema.json', import.meta.url), 'utf8'));
writeFileSync(new URL('../docs/config.md', import.meta.url), configReference(schema));
console.log('wrote docs/config.md');
