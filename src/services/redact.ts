/**
 * Redaction: every path that prints (CLI output, logs, journal, plan files) passes text
 * through here so that no password from a URL or from the environment is ever shown.
 *
 * A URL in a text runs from its `scheme://` to the first character no URL holds literally
 * (space, `"`, `<`, `>`, backslash, backtick). Its userinfo is everything up to the LAST
 * `@` in that run, as a person means it, not where a URL parser would stop: a password with
 * an unencoded `@ / # ?` (refused by the config, but possibly in a client's error message)
 * is hidden whole. A plain `user:password` keeps its user (`user:***@`); any other userinfo
 * becomes `***@`. `password=` in a query is hidden too.
 */
import { userAndPassword } from './url-syntax.js';

const URL_RUN = /[a-z][a-z0-9+.-]*:\/\/[^\s"<>\\`]*/gi;
const PLAIN_USER = /^[A-Za-z0-9\-._~!$&()*+,;=%]*$/;
const PLAIN_PASSWORD = /^[A-Za-z0-9\-._~!$&()*+,;=%:]*$/;
const QUERY_PASSWORD = /([?&;](?:ssl)?password=)[^&#;]*/gi;
const SECRET_ENV_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|KEY|SALT|CREDENTIAL)/i;
const MIN_SECRET_LENGTH = 4;

const extraSecrets = new Set<string>();

/** Registers a value (a passphrase, a salt) that must never be printed. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= MIN_SECRET_LENGTH) extraSecrets.add(value);
}

/**
 * Where the userinfo of a URL run is: from after `//` to its last `@` (undefined without one).
 * A URL with an empty authority (`file:///srv/node_modules/@scope/x`) has none: its `@` is in a path.
 */
function userinfoOf(run: string): { start: number; end: number } | undefined {
  const start = run.indexOf('//') + 2;
  if (run[start] === '/') return undefined;
  const end = run.lastIndexOf('@');
  return end >= start ? { start, end } : undefined;
}

/**
 * The schemes of the services a config names. Only their URLs in the environment give up the
 * pieces of an unencoded password as secrets; any other URL there (a registry, a module path
 * with an `@scope`) would make words of ordinary paths secret and mangle every path printed.
 */
const SERVICE_URL = /^(?:postgres|postgresql|redis|rediss|http|https):\/\//i;

function redactRun(run: string): string {
  let out = run;
  const at = userinfoOf(run);
  if (at) {
    const userinfo = run.slice(at.start, at.end);
    const colon = userinfo.indexOf(':');
    const user = colon === -1 ? userinfo : userinfo.slice(0, colon);
    const plain = PLAIN_USER.test(user) && PLAIN_PASSWORD.test(userinfo.slice(colon + 1)) && userAndPassword(userinfo) !== undefined;
    // A lone user name with no password is shown as it is; anything unusual is hidden whole.
    const shown = plain ? (colon === -1 ? user : `${user}:***`) : '***';
    out = run.slice(0, at.start) + shown + run.slice(at.end);
  }
  return out.replace(QUERY_PASSWORD, '$1***');
}

/** The secrets a URL run carries: its whole userinfo, its password as written and decoded, and the pieces an unencoded password splits into. */
function secretsOfRun(run: string): string[] {
  const found: string[] = [];
  const at = userinfoOf(run);
  if (at) {
    const userinfo = run.slice(at.start, at.end);
    const colon = userinfo.indexOf(':');
    if (colon !== -1) {
      const password = userinfo.slice(colon + 1);
      found.push(password, userAndPassword(userinfo)?.password ?? '');
      // A client that misreads the URL may print the password's pieces as a host, database or fragment.
      found.push(...password.split(/[@/?#]/));
    }
    if (!PLAIN_USER.test(colon === -1 ? userinfo : userinfo.slice(0, colon)) || userAndPassword(userinfo) === undefined) {
      found.push(userinfo, ...userinfo.split(/[@/?#:]/));
    }
  }
  for (const m of run.matchAll(QUERY_PASSWORD)) found.push(run.slice(m.index + m[0].length).split(/[&#;]/, 1)[0] ?? '');
  return found;
}

/** The passwords of the service URLs inside one environment value, by value (every output line asks again). */
const urlSecretsByValue = new Map<string, string[]>();

function urlSecretsOf(value: string): string[] {
  let found = urlSecretsByValue.get(value);
  if (!found) {
    found = [];
    for (const m of value.matchAll(URL_RUN)) if (SERVICE_URL.test(m[0])) found.push(...secretsOfRun(m[0]));
    if (urlSecretsByValue.size > 10_000) urlSecretsByValue.clear();
    urlSecretsByValue.set(value, found);
  }
  return found;
}

function secretsFromEnvironment(env: NodeJS.ProcessEnv): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < MIN_SECRET_LENGTH) continue;
    if (SECRET_ENV_NAME.test(name)) found.push(value);
    // A URL held in the environment carries its password inside: take that part too.
    found.push(...urlSecretsOf(value));
  }
  return found;
}

/** Hides the password of every URL in a text. */
function redactUrls(text: string): string {
  return text.replace(URL_RUN, redactRun);
}

/** Replaces the password of every URL, and every known secret value, by `***`. */
export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = redactUrls(text);
  const secrets = [...new Set([...extraSecrets, ...secretsFromEnvironment(env)])]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}

/** A URL fit for display: its password replaced by `***`. */
export function redactUrl(url: string): string {
  return redactUrls(url);
}
