/**
 * Redaction: every path that prints (CLI output, logs, journal, plan files) passes text
 * through here so that no password from a URL or from the environment is ever shown.
 */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/?#\s]+)(@)/gi;
const SECRET_ENV_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|KEY|SALT|CREDENTIAL)/i;
const MIN_SECRET_LENGTH = 4;

const extraSecrets = new Set<string>();

/** Registers a value (a passphrase, a salt) that must never be printed. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= MIN_SECRET_LENGTH) extraSecrets.add(value);
}

function secretsFromEnvironment(env: NodeJS.ProcessEnv): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < MIN_SECRET_LENGTH) continue;
    if (SECRET_ENV_NAME.test(name)) found.push(value);
    // A URL held in the environment carries its password inside: take that part too.
    for (const m of value.matchAll(URL_PASSWORD)) found.push(decodeURIComponent(m[2]!), m[2]!);
  }
  return found;
}

/** Replaces the password of every URL, and every known secret value, by `***`. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text.replace(URL_PASSWORD, '$1***$3');
  const secrets = [...extraSecrets, ...secretsFromEnvironment(env)]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}

/** A URL fit for display: its password replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(URL_PASSWORD, '$1***$3');
}
