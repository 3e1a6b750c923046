/**
 * The checkpoint review's templates: `review.templates` from the config plus
 * one template `wild-<n>` per prompt in the `review.wildPrompts` file, and
 * their expansion into render jobs (template x seed).
 *
 * API: `loadTemplates(review)` -> ReviewTemplate[] (reads the wild prompts
 * file), `renderJobs(templates)` -> RenderJob[], `templateFolder(name)`.
 * Bad input is a CelforgeError naming the file and line.
 */
import { readFile } from 'node:fs/promises';
import { REVIEW_TEMPLATE_DEFAULTS, type ParsedConfig } from '../../config/schema.ts';
import { CelforgeError, errorMessage } from '../../errors.ts';
import { safeFolderName, type FolderNameRules } from '../../library/safe-folder-name.ts';
import type { RenderRequest } from '../../adapters/image-generator.ts';

export type ReviewTemplate = ParsedConfig['review']['templates'][number];

/** Everything that decides a picture, apart from the checkpoint. */
export type RenderParameters = Omit<RenderRequest, 'checkpoint'>;

export interface RenderJob {
  template: string;
  /** The template's name made safe as a folder name (templateFolder). */
  folder: string;
  parameters: RenderParameters;
}

type ReviewConfig = Pick<ParsedConfig['review'], 'templates' | 'wildPrompts' | 'wildSeeds'>;

/** The configured templates, then the wild prompts in file order. */
export async function loadTemplates(review: ReviewConfig): Promise<ReviewTemplate[]> {
  const templates = [...review.templates];
  if (review.wildPrompts === undefined) return templates;
  const file = review.wildPrompts;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'CONFIG_INVALID';
    throw new CelforgeError(code, `${file}: cannot read the wild prompts file set in review.wildPrompts (${errorMessage(error)})`, { file, cause: error });
  }
  const taken = new Set(templates.map((template) => template.name.toLowerCase()));
  let count = 0;
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${file}:${index + 1}`;
    if (line.includes('\uFFFD')) throw new CelforgeError('CONFIG_INVALID', `${where}: not UTF-8 text; save the file as UTF-8`, { file });
    // The review adds the LoRA under test itself; a second one in the prompt would mix two models into the comparison.
    if (/<lora:/i.test(line)) throw new CelforgeError('CONFIG_INVALID', `${where}: a <lora:...> tag in a wild prompt; remove it (the review applies the checkpoint under test itself)`, { file });
    count += 1;
    const name = `wild-${count}`;
    if (taken.has(name)) throw new CelforgeError('CONFIG_INVALID', `${where}: its template name "${name}" is already used in review.templates; rename that template`, { file });
    templates.push({ ...REVIEW_TEMPLATE_DEFAULTS, name, prompt: line, seeds: [...review.wildSeeds] });
  });
  return templates;
}

export function renderJobs(templates: ReviewTemplate[]): RenderJob[] {
  return templates.flatMap((template) =>
    template.seeds.map((seed) => ({
      template: template.name,
      folder: templateFolder(template.name),
      parameters: {
        prompt: template.prompt,
        negativePrompt: template.negativePrompt,
        seed,
        steps: template.steps,
        cfgScale: template.cfgScale,
        sampler: template.sampler,
        width: template.width,
        height: template.height,
      },
    })),
  );
}

const TEMPLATE_NAME: FolderNameRules = {
  // ASCII only, never starting with "." or "_": the folder is a path segment of the Compare API's URLs (reviews-api.ts matches it).
  clean: (name) => name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, ''),
  maxBytes: 60,
  fallback: 'template',
  lowerCaseOnly: true,
};

/**
 * A folder name for a template on any file system: letters, digits, `.`, `_`, `-`.
 * A name that had to change (or has an upper-case letter, or is one Windows
 * refuses, such as `con`) gets a short hash of the original, so two names
 * that differ only in the replaced characters (or in case) stay apart.
 */
export function templateFolder(name: string): string {
  return safeFolderName(name, TEMPLATE_NAME);
}
