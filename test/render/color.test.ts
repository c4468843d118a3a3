/** Colour only on a terminal, and never with --no-color or NO_COLOR. */
import t from 'tap';
import { colorWanted, palette } from '../../src/render/color.js';

t.test('colour is wanted only on a terminal, with the flag on and NO_COLOR unset', async (t) => {
  t.equal(colorWanted({ isTTY: true }, true, {}), true);
  t.equal(colorWanted({ isTTY: false }, true, {}), false, 'not on a pipe or file');
  t.equal(colorWanted({}, true, {}), false);
  t.equal(colorWanted({ isTTY: true }, false, {}), false, '--no-color');
  t.equal(colorWanted({ isTTY: true }, true, { NO_COLOR: '1' }), false, 'NO_COLOR');
});

t.test('a disabled palette leaves text as it is; an enabled one wraps it in ANSI codes', async (t) => {
  t.equal(palette(false).red('x'), 'x');
  t.equal(palette(true).red('x'), '\u001b[31mx\u001b[39m');
});
