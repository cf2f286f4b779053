// Notebook 03: group_size_base, the GroupNorm group counts of the U-Net.
//
// The U-Net uses small_group_size = 2 * base groups (down0's ResidualConvBlock and the output head, 64
// channels) and big_group_size = 8 * base groups (every other GELUConvBlock, 64 and 128 channels).
// GroupNorm(groups, channels) needs channels divisible by groups. Pick base from 3..7.
// The reference solution.
#include "exercise.h"

int ex_group_size_base(void) { return 4; }
