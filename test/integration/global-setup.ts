// Integration tests run tsnet the way users do: as an unprivileged user, from
// the built package. test/support/stage.ts does all of the root-side preparation
// before any test runs, so every test file passes on its own on a fresh
// machine: the test user and its subordinate uid/gid range (rootlesskit,
// podman, --map-auto), /dev/net/tun mode, a staged copy the user can read.
// The user's processes start in / (test/support/proc.ts), never in the clone.

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { prepareTun, stagePackage, unprivilegedUser, type RunAs } from '../support/stage.js';

declare module 'vitest' {
  export interface ProvidedContext {
    stageDir: string;
    runAs: RunAs | null;
    integrationSkip: string;
  }
}

export default function setup(project: TestProject): () => void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  let skip = '';
  if (!fs.existsSync(`${root}/dist/src/cli/main.cjs`)) skip = 'dist/ is missing: run `npm run build` (npm test does)';
  const runAs = unprivilegedUser();
  skip ||= prepareTun();
  const stage = skip ? '/nonexistent' : stagePackage(root, ['test/integration/guest']);
  project.provide('stageDir', stage);
  project.provide('runAs', runAs);
  project.provide('integrationSkip', skip);
  return () => {
    if (!skip) fs.rmSync(stage, { recursive: true, force: true });
  };
}
