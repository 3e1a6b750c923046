/**
 * `celforge doctor`: checks the configuration, ffmpeg and ffprobe, the
 * library's disk, the models and their checksums, the ONNX execution
 * providers, the notification channels and the Kohya set-up; one line each,
 * OK or what to do. Exit code 1 when anything fails.
 */
import { loadConfig, validateConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import {
  diskChecks, ffmpegChecks, modelChecks, notificationChecks, providerChecks, trainingChecks, type CheckResult,
} from '../doctor/doctor-checks.ts';
import type { GlobalOptions } from './context.ts';

const LABEL = { ok: 'OK  ', warn: 'WARN', fail: 'FAIL' } as const;

export async function doctorCommand(options: GlobalOptions): Promise<number> {
  const results: CheckResult[] = [];
  let config: Config;
  try {
    config = await loadConfig({ configPath: options.config, library: options.library });
    results.push({ name: 'config', status: 'ok', detail: config.source ?? 'no config file: the defaults' });
  } catch (error) {
    results.push({ name: 'config', status: 'fail', detail: `${errorMessage(error)}\n      (the other checks use the defaults)` });
    config = validateConfig({}, 'defaults', process.cwd());
  }
  for (const checks of [ffmpegChecks, diskChecks, modelChecks, providerChecks, notificationChecks, trainingChecks]) {
    try {
      results.push(...(await checks(config)));
    } catch (error) {
      results.push({ name: checks.name.replace(/Checks$/, ''), status: 'fail', detail: `the check itself failed: ${errorMessage(error)}` });
    }
  }
  const width = Math.max(...results.map((result) => result.name.length));
  for (const result of results) process.stdout.write(`${LABEL[result.status]}  ${result.name.padEnd(width)}  ${result.detail}\n`);
  const failed = results.filter((result) => result.status === 'fail').length;
  process.stdout.write(failed ? `${failed} problem${failed === 1 ? '' : 's'} to fix\n` : 'everything needed is in place\n');
  return failed ? 1 : 0;
}
