/**
 * How a service URL is written, read the way a person means it: the userinfo runs from `//` to
 * the LAST `@`, the host and port from there to the next `/`, `?` or `#`. WHATWG URL (which
 * pg-connection-string and our own parsers use) ends the authority at the FIRST `/`, `?` or
 * `#`, so a password holding one of them is read as a host, a path or a fragment, and then
 * printed as such. `urlSyntaxProblem` finds every such mismatch before anything connects;
 * its answers never quote the URL.
 */

export interface WrittenUrl {
  /** `postgres` (without `://`). */
  scheme: string;
  /** Between `//` and the last `@`, as written; undefined without an `@`. */
  userinfo?: string;
  host: string;
  /** As written after the host's `:`; undefined without one. */
  port?: string;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** RFC 3986 userinfo: unreserved, sub-delims, `:` and %-escapes. */
const USERINFO_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:%]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
const REG_NAME = /^[A-Za-z0-9\-._~!$&'()*+,;=%]*$/;
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;

/** The parts of `scheme://userinfo@host:port/...` as written, or undefined without `scheme://`. */
export function splitWrittenUrl(url: string): WrittenUrl | undefined {
  const m = SCHEME.exec(url);
  if (!m) return undefined;
  const after = url.slice(m[0].length);
  const at = after.lastIndexOf('@');
  const rest = after.slice(at + 1);
  const end = rest.search(/[/?#\\]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const bracket = authority.startsWith('[') ? authority.indexOf(']') : -1;
  const colon = authority.indexOf(':', bracket === -1 ? 0 : bracket);
  const out: WrittenUrl = { scheme: m[1]!.toLowerCase(), host: colon === -1 ? authority : authority.slice(0, colon) };
  if (at !== -1) out.userinfo = after.slice(0, at);
  if (colon !== -1) out.port = authority.slice(colon + 1);
  return out;
}

function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** The user and password a userinfo means: split at its first `:`, each %-decoded. */
export function userAndPassword(userinfo: string): { user: string; password?: string } | undefined {
  const colon = userinfo.indexOf(':');
  const user = decoded(colon === -1 ? userinfo : userinfo.slice(0, colon));
  const password = colon === -1 ? undefined : decoded(userinfo.slice(colon + 1));
  if (user === undefined || (colon !== -1 && password === undefined)) return undefined;
  return password === undefined ? { user } : { user, password };
}

/**
 * Why `url` does not parse as written (in words that quote no part of it), or undefined when
 * it does or has no `scheme://` (the scheme check says so). Never throws.
 */
export function urlSyntaxProblem(url: string): string | undefined {
  const written = splitWrittenUrl(url);
  if (!written) return undefined;
  const { userinfo, host, port } = written;
  if (userinfo !== undefined) {
    if (userinfo.includes('@')) return 'more than one @ before the host';
    if (/[/?#\\]/.test(userinfo)) return 'a /, ?, # or \\ before the last @, where it would end the host';
    if (BAD_ESCAPE.test(userinfo)) return 'a % before the last @ that does not start a %-escape of two hex digits';
    if (!USERINFO_CHARS.test(userinfo)) return 'a space, a quote or another character before the last @ that must be percent-encoded';
    if (!userAndPassword(userinfo)) return 'a %-escape before the last @ that does not decode to UTF-8 text';
  }
  if (port !== undefined && port !== '') {
    if (!/^[0-9]+$/.test(port)) return 'the port is not a number';
    if (Number(port) > 65535) return 'the port is above 65535';
  }
  if (!IP_LITERAL.test(host) && !REG_NAME.test(host)) return 'the host holds a character a host name cannot have';
  if (BAD_ESCAPE.test(host)) return 'a % in the host that does not start a %-escape of two hex digits';

  // The same URL through WHATWG URL, which the clients use: it must mean what is written.
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined; // not a URL at all: the caller's check reports that, with the expected form
  }
  if (userinfo !== undefined) {
    const meant = userAndPassword(userinfo);
    const read = userAndPassword(`${parsed.username}:${parsed.password}`);
    if (!meant || !read || meant.user !== read.user || (meant.password ?? '') !== (read.password ?? '')) {
      return 'the user and password do not read back as written';
    }
  } else if (parsed.username !== '' || parsed.password !== '') {
    return 'the user and password do not read back as written';
  }
  if (port !== undefined && port !== '' && parsed.port !== '' && Number(parsed.port) !== Number(port)) return 'the port does not read back as written';
  if (/^[A-Za-z0-9.-]+$/.test(host) && parsed.hostname.toLowerCase() !== host.toLowerCase()) return 'the host does not read back as written';
  return undefined;
}

const PERCENT_ENCODE_HINT = 'percent-encode the password (e.g. @ as %40, / as %2F, # as %23, ? as %3F, % as %25, : as %3A)';

/** The config's words for a URL that does not parse as written, or undefined when it does. */
export function urlSyntaxMessage(url: string): string | undefined {
  const problem = urlSyntaxProblem(url);
  return problem === undefined ? undefined : `the URL does not parse as intended (${problem}); ${PERCENT_ENCODE_HINT}`;
}
