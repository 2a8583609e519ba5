import t from 'tap';
import { WeftError } from '../src/errors.js';
t.test('error carries code', async (t) => {
  const e = new WeftError('WEFT_ERR_CONFIG', 'x');
  t.equal(e.code, 'WEFT_ERR_CONFIG');
});
