/**
 * The `celforge` command line. Each command's module is imported when that
 * command runs: `celforge status` does not load ONNX Runtime, sharp and the
 * pipeline.
 */
import { Command } from 'commander';
import { CelforgeError } from '../errors.ts';
import type { GlobalOptions } from './context.ts';
import type { ExportCommandOptions } from './export.ts';
import type { WorkerCommandOptions } from './worker.ts';

const program = new Command('celforge')
  .description('Anime Blu-ray rips to a tagged Stable Diffusion dataset, as a background service.')
  .option('--config <file>', 'configuration file (default: ./daemon.config.ts)')
  .option('--library <dir>', 'library folder, overriding the configured one')
  .option('--verbose', 'debug logs, and stacks on errors')
  .showHelpAfterError();

const globals = (command: Command): GlobalOptions => command.optsWithGlobals() as GlobalOptions;

/** A command whose first argument is a catalog query, which may start with a negated tag ("-solo 1girl"). */
const queryCommand = (name: string, description: string, queryHelp = 'which images') =>
  program.command(name).allowUnknownOption().description(description).argument('<query>', queryHelp);

program
  .command('start')
  .description('run the daemon in the foreground: watch the inbox, process what arrives, serve the review page')
  .option('--port <n>', 'port of the review page (default review.port, 8642; 0 picks a free one)')
  .action(async (_options, command: Command) => (await import('./start.ts')).startCommand(globals(command) as GlobalOptions & { port?: string }));

program
  .command('worker')
  .description("take extraction jobs from the coordinator's job queue (queue.redis) and run them here, on the shared library")
  .option('--redis <url>', 'the job queue: redis://[user][:password]@host:port[/db], rediss:// for TLS (default queue.redis)')
  .option('--gpu <n>', 'the GPU this worker uses (CUDA_VISIBLE_DEVICES), shown by status')
  .option('--concurrency <n>', 'jobs run at once (default 1)')
  .action(async (_options, command: Command) => (await import('./worker.ts')).workerCommand(globals(command) as WorkerCommandOptions));

program
  .command('process')
  .description('run the pipeline once over the given videos, with a progress bar')
  .argument('<video...>', 'video files')
  .action(async (videos: string[], _options, command: Command) => {
    process.exitCode = await (await import('./process.ts')).processCommand(videos, globals(command));
  });

program
  .command('status')
  .description('the jobs with their stage and state')
  .option('--json', 'print JSON')
  .action(async (_options, command: Command) => (await import('./status.ts')).statusCommand(globals(command) as GlobalOptions & { json?: boolean }));

program
  .command('frames')
  .description('the frame map of a video: kept frames, duplicates and scenes')
  .argument('<video>', 'the video file, or its job id')
  .option('--json', 'one JSON object per source frame')
  .action(async (video: string, _options, command: Command) => (await import('./frames.ts')).framesCommand(video, globals(command) as GlobalOptions & { json?: boolean }));

program
  .command('restore')
  .description('bring duplicate frames back as kept frames, at full resolution')
  .argument('<video>', 'the video file, or its job id')
  .argument('<frame...>', 'frame numbers')
  .action(async (video: string, frames: string[], _options, command: Command) => (await import('./restore.ts')).restoreCommand(video, frames, globals(command)));

queryCommand('search', 'images in the catalog that match a query, e.g. "1girl -solo series:ubw episode:3"', 'tags, -negated tags, namespace:value, namespace:*')
  .option('--json', 'one JSON object per image, with its tags')
  .option('--limit <n>', 'at most this many')
  .action(async (query: string, _options, command: Command) => (await import('./search.ts')).searchCommand(query, globals(command) as GlobalOptions & { json?: boolean; limit?: string }));

queryCommand('tag', "add and remove tags on every image a query finds (a person's edit: re-tagging never undoes it)")
  .option('--add <tags>', 'comma-separated tags to add')
  .option('--remove <tags>', 'comma-separated tags to remove')
  .action(async (query: string, _options, command: Command) => (await import('./tag.ts')).tagCommand(query, globals(command) as GlobalOptions & { add?: string; remove?: string }));

program
  .command('import')
  .description('import images with Kohya (frame.txt) or Hydrus (frame.png.txt) sidecars; known images only have tags merged')
  .argument('<folder>', 'folder to import, recursively')
  .action(async (folder: string, _options, command: Command) => {
    process.exitCode = await (await import('./import.ts')).importCommand(folder, globals(command));
  });

queryCommand('reject', "take images out of the dataset: their files move to the library's trash/, nothing is deleted")
  .option('--yes', 'do not ask, even when the query takes more than catalog.rejectConfirmShare of the library')
  .action(async (query: string, _options, command: Command) => {
    process.exitCode = await (await import('./reject.ts')).rejectCommand(query, globals(command) as GlobalOptions & { yes?: boolean });
  });

queryCommand('unreject', 'bring rejected images back from the trash to where they were, into the dataset')
  .action(async (query: string, _options, command: Command) => {
    process.exitCode = await (await import('./reject.ts')).unrejectCommand(query, globals(command));
  });

queryCommand('export', 'the images a query finds as a Kohya sd-scripts dataset (captions, dataset_config.toml, bucket report)')
  .requiredOption('--out <dir>', 'dataset folder')
  .option('--skip-hydrus', 'export without pulling corrections from Hydrus first')
  .action(async (query: string, _options, command: Command) => (await import('./export.ts')).exportCommand(query, globals(command) as ExportCommandOptions));

program
  .command('models')
  .description('list the models and whether they are here, or fetch them (all, or the ids given)')
  .argument('<action>', 'list or fetch')
  .argument('[id...]', 'model ids (fetch)')
  .action(async (action: string, ids: string[], _options, command: Command) => (await import('./models.ts')).modelsCommand(action, ids, globals(command)));

program
  .command('faces')
  .description('run the configured face detector on pictures: boxes with scores, and pass or fail')
  .argument('<image...>', 'picture files')
  .option('--json', 'print JSON')
  .action(async (images: string[], _options, command: Command) => {
    process.exitCode = await (await import('./faces.ts')).facesCommand(images, globals(command) as GlobalOptions & { json?: boolean });
  });

program
  .command('tags')
  .description('run the configured taggers (and the face gate) on pictures: tags with probabilities and sources')
  .argument('<image...>', 'picture files')
  .option('--json', 'print JSON')
  .option('--no-gate', 'keep subject tags whether or not a face is found')
  .action(async (images: string[], _options, command: Command) => {
    process.exitCode = await (await import('./tags.ts')).tagsCommand(images, globals(command) as GlobalOptions & { json?: boolean; gate?: boolean });
  });

program
  .command('train')
  .description('queue a Kohya training run for the next training window (or start it now)')
  .option('--now', 'start now instead of in the next window (in the foreground when no daemon runs)')
  .action(async (_options, command: Command) => {
    process.exitCode = await (await import('./train.ts')).trainCommand(globals(command) as GlobalOptions & { now?: boolean });
  });

program
  .command('review-checkpoints')
  .description('render, tag and score the checkpoints queued for review now, against the version before each (or review version N again)')
  .option('--version <n>', 'the version to review again, e.g. 2')
  .action(async (_options, command: Command) => {
    process.exitCode = await (await import('./review-checkpoints.ts')).reviewCheckpointsCommand(globals(command) as GlobalOptions & { version?: string });
  });

program
  .command('doctor')
  .description('check ffmpeg, disk space, models, ONNX providers, notifications, Kohya and the configuration; say what to fix')
  .action(async (_options, command: Command) => {
    process.exitCode = await (await import('./doctor.ts')).doctorCommand(globals(command));
  });

program
  .command('gpu')
  .description("Linux x64 with an NVIDIA GPU: install onnxruntime-node's CUDA provider (a download), then say whether it loads")
  .argument('<action>', 'install')
  .action(async (action: string) => {
    process.exitCode = await (await import('./gpu.ts')).gpuCommand(action);
  });

program
  .command('service')
  .description('install celforge as a service that starts with the machine (systemd, launchd, Task Scheduler), remove it, or show it')
  .argument('<action>', 'install, uninstall or status')
  .option('--print', 'show the unit file and the commands instead of running them')
  .option('--system', 'Linux: a system unit (headless boxes) instead of a user unit')
  .action(async (action: string, _options, command: Command) => {
    process.exitCode = await (await import('./service.ts')).serviceCommand(action, globals(command) as GlobalOptions & { print?: boolean; system?: boolean });
  });

program
  .command('hydrus')
  .description("push images and tags to Hydrus, or pull a person's corrections back from it")
  .allowUnknownOption()
  .argument('<direction>', 'push or pull')
  .argument('<query>', 'which images')
  .action(async (direction: string, query: string, _options, command: Command) => (await import('./hydrus.ts')).hydrusCommand(direction, query, globals(command)));

// Output piped into `head` and cut short is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const verbose = process.argv.includes('--verbose');
  if (error instanceof CelforgeError && !verbose) {
    process.stderr.write(`celforge: ${error.message}\n`);
  } else {
    process.stderr.write(`celforge: ${error instanceof Error ? (verbose ? error.stack : error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
}
