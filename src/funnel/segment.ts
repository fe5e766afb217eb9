/**
 * The segment of an entry: the attributes a breakdown groups by, taken from the step-1 event's
 * context. User agents are parsed with bowser (MIT, pure JavaScript, runs in workerd).
 */
import Bowser from 'bowser';
import { sliceWhole } from '../ingest/guards';
import { memoize } from '../lib/memo';

/** Breakdown keys stored as columns of `attempts` (and as rollup dims), by their URL name. */
export const SEGMENT_COLUMNS = {
  utm_source: 'utm_source',
  utm_medium: 'utm_medium',
  utm_campaign: 'utm_campaign',
  referrer_domain: 'referrer_domain',
  device: 'device',
  browser: 'browser',
  os: 'os',
  country: 'country',
} as const;

export type SegmentKey = keyof typeof SEGMENT_COLUMNS;

export interface Segment {
  utmSource: string | null;
  utmMedium: string | null;
  utmCampaign: string | null;
  referrerDomain: string | null;
  device: string | null;
  browser: string | null;
  os: string | null;
  country: string | null;
}

// Cut on whole characters: half an emoji would be stored as invalid UTF-8, and its row would
// never read back as the text written (src/funnel/rollups.ts, LOG_SQL).
const text = (value: unknown, max = 200): string | null =>
  typeof value === 'string' && value.trim() !== '' ? sliceWhole(value.trim(), max) : null;

function hostOf(url: unknown): string | null {
  const value = text(url, 2000);
  if (!value) return null;
  try {
    return new URL(value).hostname.replace(/^www\./, '') || null;
  } catch {
    return null;
  }
}

function campaignFromUrl(url: unknown): Record<string, string> {
  const value = text(url, 4000);
  if (!value) return {};
  try {
    const params = new URL(value).searchParams;
    const found: Record<string, string> = {};
    for (const key of ['source', 'medium', 'campaign']) {
      const v = params.get(`utm_${key}`);
      if (v) found[key] = v;
    }
    return found;
  } catch {
    return {};
  }
}

/** Device type, browser and OS of a user agent, remembered per agent string. */
const agentFacts = memoize((userAgent: string) => {
  const parsed = Bowser.parse(userAgent);
  // Bowser answers "" for what it cannot name: that is no value, shown as "(none)".
  return {
    device: parsed.platform.type || null,
    browser: parsed.browser.name || null,
    os: parsed.os.name || null,
  };
});

/** Derives the segment from an event context (Segment's `context` shape). */
export function segmentOf(context: Record<string, unknown> | null): Segment {
  const ctx = context ?? {};
  const page = (ctx.page ?? {}) as Record<string, unknown>;
  const campaign = (ctx.campaign ?? {}) as Record<string, unknown>;
  const fromUrl = campaignFromUrl(page.url);
  const location = (ctx.location ?? {}) as Record<string, unknown>;
  const userAgent = text(ctx.userAgent, 1000);

  const { device, browser, os } = userAgent
    ? agentFacts(userAgent)
    : { device: null, browser: null, os: null };
  return {
    utmSource: text(campaign.source) ?? text(fromUrl.source),
    utmMedium: text(campaign.medium) ?? text(fromUrl.medium),
    utmCampaign: text(campaign.name) ?? text(fromUrl.campaign),
    referrerDomain: hostOf(page.referrer),
    device,
    browser,
    os,
    country: text(location.country, 64),
  };
}
