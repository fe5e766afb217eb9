/**
 * Which valid events are kept out of funnels: bots and crawlers (the `isbot` library), pages
 * being prerendered, and visitors who asked not to be tracked on a site that honours it. Pure.
 */
import { isbot, isbotMatch, isbotPattern } from 'isbot';
import { memoize } from '../lib/memo';

export interface TrafficFacts {
  /** The event's `context.userAgent`. */
  eventUserAgent: string | null;
  /** The request's `User-Agent`, trusted for bot checks only when a browser sent the request. */
  requestUserAgent: string | null;
  /** True when the request carries an `Origin` header, as every browser POST does. */
  fromBrowser: boolean;
  /** The `Sec-Purpose` (or legacy `Purpose`) request header. */
  purpose: string | null;
  /** `Sec-GPC: 1` or `DNT: 1` was sent. */
  optOut: boolean;
  /** The site honours Global Privacy Control / Do Not Track. */
  honorPrivacySignals: boolean;
}

export interface FilterVerdict {
  code: 'bot' | 'prerender' | 'privacy_opt_out';
  /** What matched: the isbot pattern, the header. */
  rule: string;
  message: string;
}

/**
 * Returns why an event must be kept out of funnels, or null for ordinary traffic. A server SDK's
 * own user agent (`node`, `python-requests`) is not the visitor's, so the request header counts
 * only for requests a browser sent.
 */
export function classifyTraffic(facts: TrafficFacts): FilterVerdict | null {
  if (facts.honorPrivacySignals && facts.optOut) {
    return {
      code: 'privacy_opt_out',
      rule: 'Sec-GPC/DNT',
      message: 'the visitor sent Global Privacy Control or Do Not Track; the site honours it',
    };
  }
  if (facts.purpose && /prerender/i.test(facts.purpose)) {
    return {
      code: 'prerender',
      rule: `Sec-Purpose: ${facts.purpose.slice(0, 100)}`,
      message: 'sent by a page being prerendered, which the visitor may never see',
    };
  }
  const agent = facts.eventUserAgent ?? (facts.fromBrowser ? facts.requestUserAgent : null);
  return agent ? botVerdict(agent) : null;
}

/**
 * The bot verdict of a user agent, remembered per agent string. `isbot` tests the one combined
 * pattern; only a bot's agent is then matched rule by rule to name the rule (`isbotPattern`
 * compiles each rule in turn, which for an ordinary browser meant every rule, per event).
 */
const botVerdict = memoize((agent: string): FilterVerdict | null => {
  if (!isbot(agent)) return null;
  const pattern = isbotPattern(agent) ?? 'isbot';
  return {
    code: 'bot',
    rule: pattern,
    message: `user agent matched the isbot rule for "${isbotMatch(agent) ?? pattern}"`,
  };
});
