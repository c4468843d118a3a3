import { JarvisError } from '../errors.js';

/** For commands that a later issue builds: they are in --help already and say so. */
export function notBuiltYet(command: string, issue: string): never {
  throw new JarvisError('NOT_IMPLEMENTED', `\`jarvis-db ${command}\` is not built yet (${issue}).`);
}
