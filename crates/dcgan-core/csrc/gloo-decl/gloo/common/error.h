#pragma once
// See README.md: libtorch's ProcessGroupGloo.hpp includes this; nothing of it is used here.
