/**
 * Passwords written into URLs without percent-encoding, and what every test of them checks:
 * no piece of three characters or more of the password is ever printed.
 */

/** Passwords with `@ / % # ? :` in them; each makes a URL that does not parse as written (except `:` alone). */
export const HOSTILE_PASSWORDS = [
  'Sp@c/i%al:P#w?d', // the one from the report
  'tW0@xQ@9zK', // two @
  'sL4/hQ/7vZ', // slashes
  'hX3#tQ-8wJ', // a #
  'qZ3?mK-5yV', // a ?
  'pC%zzQ-4nW', // a % that is no %-escape
  'pC%ceQ-6nW', // a %-escape that is not UTF-8
  'mX:d@b#c?e/f%g', // all of them
  '%7EkQ-7@bZ', // encoded once, then not
] as const;

/** A password whose only unusual character is `:`: it parses as written (the user ends at the first `:`). */
export const COLON_PASSWORD = 'cL0n:S3p:aR4t';

/** `postgres://spec:PASSWORD@127.0.0.1:PORT/jarvis` and its siblings, the password as written. */
export const URL_FORMS = {
  postgres: (password: string, port = 5999) => `postgres://spec:${password}@127.0.0.1:${port}/jarvis`,
  redis: (password: string, port = 6999) => `redis://default:${password}@127.0.0.1:${port}/0`,
  chroma: (password: string, port = 8999) => `http://spec:${password}@127.0.0.1:${port}`,
} as const;

/** Every piece of the password at least `min` characters long. */
export function fragments(password: string, min = 3): string[] {
  const out = new Set<string>();
  for (let i = 0; i < password.length; i++) {
    for (let j = i + min; j <= password.length; j++) out.add(password.slice(i, j));
  }
  return [...out];
}

/** The pieces of `password` that `text` shows (none, when it is safe). */
export function leaked(text: string, password: string): string[] {
  return fragments(password).filter((f) => text.includes(f));
}
