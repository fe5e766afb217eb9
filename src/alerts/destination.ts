/**
 * Where a channel may send, pure: only to public hosts, so a channel URL cannot turn the Worker
 * into a way to reach loopback, private networks or a cloud metadata address (SSRF). Local
 * development and tests allow private hosts with `ALERTS_ALLOW_PRIVATE_HOSTS=1`.
 */
import * as ipaddr from 'ipaddr.js';

// The host as typed, before the URL parser rewrites numeric spellings (`0x7f.1`) into dotted
// decimal: userinfo and port left out, brackets of an IPv6 literal kept.
const RAW_HOST = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i;

/**
 * Why `url` is not a public destination (a sentence naming the host), or null when it is. Refused:
 * `localhost` and `*.localhost`; IPv4 outside public unicast (loopback, RFC 1918, link-local,
 * CGNAT 100.64/10, 0.0.0.0/8, multicast, reserved …); IPv6 outside public unicast (::1, fc00::/7,
 * fe80::/10, …), IPv4-mapped addresses judged by their IPv4; and IPv4 written as a bare number,
 * in hex, octal or short form, which only hides the address. A DNS name is judged by its text
 * only: a Worker cannot resolve it first, so a public name pointing at a private address passes.
 */
export function privateDestinationReason(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  const host = parsed.hostname.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return `${host} is a loopback name`;
  }

  if (host.startsWith('[')) {
    const v6 = ipaddr.IPv6.parse(host.slice(1, -1));
    if (v6.isIPv4MappedAddress()) return ipv4Reason(v6.toIPv4Address(), host);
    const range = v6.range();
    return range === 'unicast' ? null : `${host} is not a public address (${range})`;
  }

  if (ipaddr.IPv4.isValidFourPartDecimal(host)) {
    const typed = RAW_HOST.exec(url.trim())?.[1]?.toLowerCase().replace(/\.$/, '');
    if (typed !== host) {
      return `${typed ?? 'the host'} is an IPv4 address in a numeric spelling; write it as ${host}`;
    }
    return ipv4Reason(ipaddr.IPv4.parse(host), host);
  }
  return null;
}

function ipv4Reason(address: ipaddr.IPv4, host: string): string | null {
  const range = address.range();
  return range === 'unicast' ? null : `${host} is not a public address (${range})`;
}

/** True when the Worker's vars allow private destinations (local development and tests). */
export function allowsPrivateHosts(env: { ALERTS_ALLOW_PRIVATE_HOSTS?: string }): boolean {
  return env.ALERTS_ALLOW_PRIVATE_HOSTS === '1';
}
