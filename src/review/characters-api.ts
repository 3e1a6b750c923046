/**
 * The review API of the Characters view, over the catalog's character
 * clusters (CharacterClusters). Reads: the series that have clusters; one
 * series' clusters with sample crops, and how many images are flagged where
 * a tagger's character tag and the clusters disagree; a cluster's members.
 * Changes, which the catalog's tags follow at once: name a cluster, merge
 * another cluster into it, move crops out of it, mark it noise (or not).
 * Crops are shown through /api/images/<hash>, the catalog's picture route,
 * never by a path. The server's token, Origin and login rules guard these
 * routes as every other.
 *
 *   GET  /api/characters                            {series: [...]}
 *   GET  /api/characters/clusters?series=&samples=  {series, clusters: [...], conflicts: {tag, count}}
 *   GET  /api/characters/clusters/<id>/members      {id, members: [...]}
 *   POST /api/characters/clusters/<id>/name         {"name": "..."} -> {id, tag}
 *   POST /api/characters/clusters/<id>/merge        {"other": <id>}
 *   POST /api/characters/clusters/<id>/move-out     {"hashes": [...]}
 *   POST /api/characters/clusters/<id>/noise        {"noise": true|false}
 */
import { z } from 'zod';
import { refreshCaptions } from '../catalog/caption-refresh.ts';
import { CharacterClusters } from '../catalog/character-clusters.ts';
import { CONFLICT_TAG, characterTag } from '../catalog/character-tags.ts';
import { ApiError, parseBody } from './api-request.ts';
import type { ApiResult, Handler, ReviewContext } from './review-api.ts';

const CLUSTER = '(\\d{1,15})';
const DEFAULT_SAMPLES = 8;
const MAX_SAMPLES = 50;
const NAME_MAX = 100;

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'expected an image hash (64 hex digits)');
const BODIES = {
  name: z.strictObject({
    name: z.string().max(NAME_MAX, `a name is at most ${NAME_MAX} characters`).refine((value) => value.trim().length > 0, 'a name cannot be empty'),
  }),
  merge: z.strictObject({ other: z.number().int().min(0) }),
  moveOut: z.strictObject({ hashes: z.array(hash).min(1, 'name at least one crop') }),
  noise: z.strictObject({ noise: z.boolean() }),
};
const USAGE: Record<keyof typeof BODIES, string> = {
  name: '{"name": "<character name>"}',
  merge: '{"other": <the cluster that joins this one>}',
  moveOut: '{"hashes": [<crop hashes>]}',
  noise: '{"noise": true|false}',
};

type Body<K extends keyof typeof BODIES> = z.output<(typeof BODIES)[K]>;

/**
 * A change to cluster `<id>`: its handler sees a body that passed the route's
 * schema. The store refuses an unknown cluster or crop (FILE_NOT_FOUND, a 404)
 * and a name no tag can carry (CONFIG_INVALID, a 400), naming them. The
 * captions beside the crops of the clusters it touches, and beside their
 * frames, are written again from the catalog, as after any tag edit.
 */
function change<K extends keyof typeof BODIES>(kind: K, handler: (clusters: CharacterClusters, id: number, body: Body<K>) => unknown): Handler {
  return async (context, [id], _url, body) => {
    const parsed = parseBody(BODIES[kind], body, USAGE[kind]) as Body<K>;
    const clusters = new CharacterClusters(context.catalog);
    const touched = [Number(id), ...('other' in parsed ? [parsed.other as number] : [])];
    const crops = touched.flatMap((cluster) => (clusters.exists(cluster) ? clusters.members(cluster).map((member) => member.hash) : []));
    const result = handler(clusters, Number(id), parsed);
    const frames = crops.map((crop) => context.catalog.get(crop)?.origin?.hash).filter((frame): frame is string => frame !== undefined);
    await refreshCaptions(context.catalog, context.config(), [...crops, ...frames]);
    return json(result);
  };
}

export const CHARACTER_ROUTES: [string, RegExp, Handler][] = [
  ['GET', /^\/api\/characters$/, seriesList],
  ['GET', /^\/api\/characters\/clusters$/, clustersOf],
  ['GET', new RegExp(`^/api/characters/clusters/${CLUSTER}/members$`), membersOf],
  ['POST', new RegExp(`^/api/characters/clusters/${CLUSTER}/name$`), change('name', (clusters, id, { name }) => {
    clusters.name(id, name);
    return { id, tag: characterTag(name) };
  })],
  ['POST', new RegExp(`^/api/characters/clusters/${CLUSTER}/merge$`), change('merge', (clusters, id, { other }) => {
    clusters.merge(id, other);
    return { id, merged: other };
  })],
  ['POST', new RegExp(`^/api/characters/clusters/${CLUSTER}/move-out$`), change('moveOut', (clusters, id, { hashes }) => {
    clusters.moveOut(id, hashes);
    return { id, moved: hashes.length };
  })],
  ['POST', new RegExp(`^/api/characters/clusters/${CLUSTER}/noise$`), change('noise', (clusters, id, { noise }) => {
    clusters.markNoise(id, noise);
    return { id, noise };
  })],
];

const json = (value: unknown): ApiResult => ({ kind: 'json', value });
const picture = (crop: string) => `/api/images/${crop}`;

async function seriesList(context: ReviewContext): Promise<ApiResult> {
  return json({ series: new CharacterClusters(context.catalog).seriesList() });
}

async function clustersOf(context: ReviewContext, _match: string[], url: URL): Promise<ApiResult> {
  const clusters = new CharacterClusters(context.catalog);
  const series = url.searchParams.get('series') ?? '';
  if (!clusters.seriesList().includes(series)) throw new ApiError(404, `no character clusters in series "${series}"`);
  const samples = Math.min(MAX_SAMPLES, Math.max(1, Number(url.searchParams.get('samples') ?? DEFAULT_SAMPLES) || DEFAULT_SAMPLES));
  return json({
    series,
    clusters: clusters.clusters(series, samples).map(({ id, name, noise, size, samples: crops }) => ({
      id, name, noise, size, samples: crops.map((crop) => ({ hash: crop.hash, picture: picture(crop.hash) })),
    })),
    conflicts: { tag: CONFLICT_TAG, count: context.catalog.count(CONFLICT_TAG) },
  });
}

async function membersOf(context: ReviewContext, [id]: string[]): Promise<ApiResult> {
  return json({
    id: Number(id),
    members: new CharacterClusters(context.catalog).members(Number(id)).map(({ hash: crop, frame, episode, byPerson }) => ({ hash: crop, picture: picture(crop), frame, episode, byPerson })),
  });
}
