/**
 * tags: the configured taggers tag every kept frame of the video; their
 * average is selected per category, copyright and blacklisted tags dropped,
 * and subject tags kept only where the faces stage found a face. Results go
 * to the catalog (source `tagger:ensemble`, and `face-gate` for the subject
 * tags a face confirmed), and a Kohya `.txt` caption is written next to each
 * frame from the catalog's tags (a person's edits included). A missing
 * tagger makes the job wait; a restart continues after the last batch
 * recorded, and a change of taggers starts over.
 */
import { rename, writeFile } from 'node:fs/promises';
import { readFaces } from '../../adapters/faces-file.ts';
import { captionFor } from '../../catalog/captions.ts';
import { refreshCharacterTags } from '../../catalog/character-tags.ts';
import { captionPathOf } from '../../catalog/sidecars.ts';
import { formatTag, parseTag } from '../../catalog/tags.ts';
import type { Config } from '../../config/schema.ts';
import { videoLayoutOf } from '../../daemon/library-paths.ts';
import { forEachBatch } from '../batches.ts';
import { hashOf, keptFrames, type KeptFrame } from '../kept-frames.ts';
import { markRunning, modelsOrWait } from '../model-wait.ts';
import type { Stage, StagePorts } from '../stage.ts';
import { loadTaggers, prepareForTaggers, tagPrepared, type PictureTags } from './tagging.ts';

export const tagsStage: Stage = async (job, ports) => {
  const config = ports.config();
  const ids = config.tags.taggers;
  if (ids.length === 0) return { kind: 'done', change: (target) => void delete target.tags };
  const available = await modelsOrWait(ports, ids, ['tagger']);
  if (!available.ready) return available.result;
  if (job.state !== 'running') await markRunning(ports);

  const taggers = await loadTaggers(config, available.models, ports);
  const layout = videoLayoutOf(job, config.library);
  const frames = await keptFrames(layout);
  const sameTaggers = job.tags && job.tags.taggers.join() === ids.join();
  let count = sameTaggers ? Math.min(job.tags!.framesDone, frames.length) : 0;
  let gated = sameTaggers ? job.tags!.framesGated : 0;
  const faceCounts = await faceCountsByFrame(layout.faces, config);
  const progress = () => {
    const [framesDone, framesGated] = [count, gated];
    return (target: typeof job) => {
      target.tags = { taggers: [...ids], framesDone, framesGated };
      target.progress = { done: framesDone, total: frames.length };
    };
  };
  const outcome = await forEachBatch(
    frames.slice(count),
    config.inference.batchSize,
    (batch) => Promise.all([prepareForTaggers(taggers, batch.map((frame) => frame.absolute), ports.images), Promise.all(batch.map(hashOf))]),
    async (batch, [inputs, hashes]) => {
      const results = await tagPrepared(taggers, inputs, batch.map((frame) => (faceCounts ? faceCounts.get(frame.frame) ?? 0 : null)), config);
      ports.catalog.batch(() => {
        results.forEach((result, index) => {
          ports.catalog.setSourceTags(hashes[index]!, 'tagger:ensemble', result.tags.filter((tag) => tag.source === 'tagger:ensemble').map((tag) => tag.tag));
          ports.catalog.setSourceTags(hashes[index]!, 'face-gate', result.tags.filter((tag) => tag.source === 'face-gate').map((tag) => tag.tag));
        });
      });
      refreshCharacterTags(ports.catalog, hashes);
      if (config.tags.sidecars) {
        await Promise.all(batch.map((frame, index) => writeSidecar(frame, hashes[index]!, results[index]!, config, ports)));
      }
      count += batch.length;
      gated += results.filter((result) => result.gated.length > 0).length;
      await ports.save(progress());
    },
    ports.signal,
  );
  if (outcome === 'aborted') return { kind: 'interrupted' };
  return { kind: 'done', change: progress() };
};

/** Face counts per frame, or null when no face detector runs (nothing is gated). */
async function faceCountsByFrame(file: string, config: Config): Promise<Map<number, number> | null> {
  if (config.faces.detector === 'none') return null;
  return new Map((await readFaces(file)).map((record) => [record.frame, record.faces.length]));
}

const CATEGORY_ORDER = { character: 0, general: 1, rating: 2, copyright: 3, other: 3 } as const;

/**
 * `frame.txt` beside `frame.png`: the frame's catalog tags as a Kohya caption,
 * the tagger's tags first (characters, then general tags by probability, then
 * the rating), then any a person added.
 */
async function writeSidecar(frame: KeptFrame, hash: string, result: PictureTags, config: Config, ports: StagePorts): Promise<void> {
  const has = new Set(ports.catalog.tagsOf(hash));
  const ranked = [...result.tags]
    .sort((a, b) => CATEGORY_ORDER[a.category] - CATEGORY_ORDER[b.category] || b.probability - a.probability)
    .map((tag) => formatTag(parseTag(tag.tag)!))
    .filter((tag) => has.has(tag));
  const rest = [...has].filter((tag) => !ranked.includes(tag));
  const caption = captionFor([...ranked, ...rest], { triggerWords: [], keepTokens: 0, underscoresToSpaces: config.tags.underscoresToSpaces });
  const target = captionPathOf(frame.absolute);
  await writeFile(`${target}.tmp`, `${caption}\n`);
  await rename(`${target}.tmp`, target);
}
