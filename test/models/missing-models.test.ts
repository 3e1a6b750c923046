/** The sentence about missing models that status, notifications and `process` show. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { missingModels } from '../../src/models/model-availability.ts';

test('one missing model is "model x is", several are "models x, y are"', () => {
  assert.equal(`${missingModels(['wd-vit-tagger-v3'])} not here`, 'model wd-vit-tagger-v3 is not here');
  assert.equal(`${missingModels(['a', 'b', 'c'])} not here`, 'models a, b, c are not here');
});
