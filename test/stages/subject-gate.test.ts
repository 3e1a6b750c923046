import assert from 'node:assert/strict';
import { test } from 'node:test';
import { subjectGate } from '../../src/stages/tags/subject-gate.ts';

const names = (tags: string[]) => tags;
const same = (tag: string) => tag;

test('no face: every subject tag goes, the rest stays', () => {
  const result = subjectGate(names(['1girl', 'solo', 'scenery', 'sky', 'multiple_girls']), same, 0);
  assert.deepEqual(result.kept, ['scenery', 'sky']);
  assert.deepEqual(result.removed, ['1girl', 'solo', 'multiple_girls']);
});

test('one face keeps them; two faces drop solo', () => {
  assert.deepEqual(subjectGate(['1girl', 'solo', 'smile'], same, 1).kept, ['1girl', 'solo', 'smile']);
  assert.deepEqual(subjectGate(['2girls', 'solo', 'smile'], same, 2).kept, ['2girls', 'smile']);
});

test('the list of subject tags is configurable, and works on scored tags', () => {
  const tags = [{ tag: 'mecha', probability: 0.9 }, { tag: '1girl', probability: 0.8 }];
  const result = subjectGate(tags, (t) => t.tag, 0, ['mecha']);
  assert.deepEqual(result.kept.map((t) => t.tag), ['1girl']);
});
