"""Built-in problem set D: 48 very easy problems in 13 more FAMILIES, as easy as set C's and on other tasks.

Set D is written like set C (`defs_c.py`): a family is one task with 3-4 instances that differ in a constant,
a name or a small detail ("the larger of two integers" / "the smaller" / "their absolute difference"), so a
policy that learns one instance has a real chance on its siblings. The canonical solutions are one to three
lines, the statements plain; every problem keeps >= 10 tests (empty, zero, single, negative and duplicate
cases among them) so that special-casing the 3 visible examples fails. No family, task or method name repeats
one of sets A, B or C (tests/test_families.py checks the names). Ids read `d_<family>__<instance>` (e.g.
`d_two_ints__larger`), with the family also carried as `family`. This set builds to `problems_d.jsonl`
(`build.py`): `data.problems: builtin_d` is this set alone, `builtin_mix` all 192 problems (sets A and B,
then C, then D); `builtin`, `builtin_c` and `builtin_all` do not load it.

    from gradient_quarantine.substrate.builtin.defs_d import PROBLEMS, FAMILIES
    from gradient_quarantine.substrate.builtin.build import build_row
    rows = [build_row(d) for d in PROBLEMS]
"""

from __future__ import annotations

from gradient_quarantine.substrate.builtin.defs_a import _problem as definition

SET = "builtin_d"  # build.py writes the definitions of this module to problems_d.jsonl
PREFIX = "d_"
FAMILY_SEP = "__"  # substrate/problems.py FAMILY_SEP: the id's family is the part before it


def _problem(
    family: str,
    instance: str,
    statement: str,
    signature: str,
    body: str,
    tests: list[dict],
    constraints: list[str],
) -> dict:
    """One definition in the format `build.py` reads (set A's `_problem`), with its id and `family`."""
    pid = f"{PREFIX}{family}{FAMILY_SEP}{instance}"
    return {**definition(pid, statement, signature, body, tests, constraints), "family": f"{PREFIX}{family}"}


_AB = ["-10^6 <= a, b <= 10^6"]
_NUMS = ["0 <= len(nums) <= 100", "-1000 <= nums[i] <= 1000"]
_NUMS_K = [*_NUMS, "-1000 <= k <= 1000"]
_NONEMPTY = ["1 <= len(nums) <= 100", "-1000 <= nums[i] <= 1000"]
_S = ["0 <= len(s) <= 100", "s consists of printable ASCII characters."]
_MINUTES = ["0 <= n <= 10^6"]
_COUNT = ["0 <= n <= 100"]

# The test lists are data tables, kept several dicts to a line so a problem fits on one screen.
# fmt: off
# The same two-integer inputs serve every instance of `two_ints`: equal, zero, negative and mixed-sign pairs.
_TWO_INTS = [
    {"a": 3, "b": 7}, {"a": 10, "b": -4}, {"a": -6, "b": -9}, {"a": 0, "b": 0}, {"a": 5, "b": 5},
    {"a": -5, "b": 0}, {"a": 0, "b": 9}, {"a": 1000000, "b": -1000000}, {"a": -7, "b": -7},
    {"a": 42, "b": 41}, {"a": 1, "b": 2}, {"a": -100, "b": 99},
]
# Lists with equal neighbours, rises, falls and fewer than two elements, for every instance of `adjacent`.
_NEIGHBOURS = [
    {"nums": [1, 2, 3, 4]}, {"nums": [5, -2, 8, 8]}, {"nums": [3, 3, 1, 6]}, {"nums": []}, {"nums": [7]},
    {"nums": [0, 0]}, {"nums": [-1, -1, -1]}, {"nums": [1, 2, 1, 2]}, {"nums": [5, 4, 3, 2, 1]},
    {"nums": [1000, -1000]}, {"nums": [2, 2, 3, 3, 3, 1]}, {"nums": [-3, -2, 0, 10]},
]

PROBLEMS: list[dict] = [
    # ------------------------------------------------------------------ arithmetic on two integers
    _problem(
        "two_ints", "larger",
        """Given two integers a and b, return the larger of the two (if they are equal, that value).""",
        "def largerOfTwo(self, a: int, b: int) -> int:",
        "return max(a, b)",
        _TWO_INTS,
        _AB,
    ),
    _problem(
        "two_ints", "smaller",
        """Given two integers a and b, return the smaller of the two (if they are equal, that value).""",
        "def smallerOfTwo(self, a: int, b: int) -> int:",
        "return min(a, b)",
        _TWO_INTS,
        _AB,
    ),
    _problem(
        "two_ints", "abs_diff",
        """Given two integers a and b, return the absolute value of their difference, |a - b|.""",
        "def absDifference(self, a: int, b: int) -> int:",
        "return abs(a - b)",
        _TWO_INTS,
        _AB,
    ),
    _problem(
        "two_ints", "floor_average",
        """Given two integers a and b, return their average rounded down to the nearest integer at or below it
        (the average of 3 and 4 gives 3, the average of -3 and 0 gives -2).""",
        "def floorAverage(self, a: int, b: int) -> int:",
        "return (a + b) // 2",
        _TWO_INTS,
        _AB,
    ),
    # ------------------------------------------------------------------ a yes/no property of a string
    _problem(
        "str_check", "starts_vowel",
        """Given a string s, return True if its first character is a vowel (a, e, i, o or u, in lowercase or
        uppercase) and False otherwise. An empty string does not start with a vowel.""",
        "def startsWithVowel(self, s: str) -> bool:",
        "return len(s) > 0 and s[0].lower() in 'aeiou'",
        [{"s": "apple"}, {"s": "banana"}, {"s": "Orange"}, {"s": ""}, {"s": "a"}, {"s": "b"}, {"s": "Egg"},
         {"s": " apple"}, {"s": "umbrella"}, {"s": "xylophone"}, {"s": "I"}, {"s": "123"}],
        _S,
    ),
    _problem(
        "str_check", "has_digit",
        """Given a string s, return True if at least one of its characters is a digit 0 to 9, and False
        otherwise.""",
        "def hasDigit(self, s: str) -> bool:",
        "return any(c.isdigit() for c in s)",
        [{"s": "abc1"}, {"s": "hello"}, {"s": "2024"}, {"s": ""}, {"s": "0"}, {"s": "o"},
         {"s": "no digits here!"}, {"s": "a b c 9"}, {"s": "x"}, {"s": "Room 101"}, {"s": "!?"}, {"s": "-"}],
        _S,
    ),
    _problem(
        "str_check", "no_uppercase",
        """Given a string s, return True if none of its characters is an uppercase letter, and False
        otherwise. An empty string has no uppercase letters.""",
        "def hasNoUppercase(self, s: str) -> bool:",
        "return not any(c.isupper() for c in s)",
        [{"s": "hello world"}, {"s": "Hello"}, {"s": "abc 123"}, {"s": ""}, {"s": "A"}, {"s": "a"},
         {"s": "123 !?"}, {"s": "camelCase"}, {"s": "snake_case"}, {"s": "NASA"}, {"s": "x y z"},
         {"s": "endsWithZ"}],
        _S,
    ),
    # ------------------------------------------------------------------ neighbouring elements of a list
    _problem(
        "adjacent", "sums",
        """Given a list of integers nums, return the list of the sums of neighbouring elements,
        [nums[0] + nums[1], nums[1] + nums[2], ...]. A list with fewer than 2 elements gives an empty
        list.""",
        "def adjacentSums(self, nums: List[int]) -> List[int]:",
        "return [nums[i] + nums[i + 1] for i in range(len(nums) - 1)]",
        _NEIGHBOURS,
        _NUMS,
    ),
    _problem(
        "adjacent", "products",
        """Given a list of integers nums, return the list of the products of neighbouring elements,
        [nums[0] * nums[1], nums[1] * nums[2], ...]. A list with fewer than 2 elements gives an empty
        list.""",
        "def adjacentProducts(self, nums: List[int]) -> List[int]:",
        "return [nums[i] * nums[i + 1] for i in range(len(nums) - 1)]",
        _NEIGHBOURS,
        _NUMS,
    ),
    _problem(
        "adjacent", "count_equal",
        """Given a list of integers nums, return how many indices i have nums[i] == nums[i + 1], that is how
        many neighbouring pairs are equal.""",
        "def countEqualNeighbours(self, nums: List[int]) -> int:",
        "return sum(1 for i in range(len(nums) - 1) if nums[i] == nums[i + 1])",
        _NEIGHBOURS,
        _NUMS,
    ),
    _problem(
        "adjacent", "count_rises",
        """Given a list of integers nums, return how many indices i have nums[i + 1] > nums[i], that is how
        many times an element is strictly greater than the one before it.""",
        "def countRises(self, nums: List[int]) -> int:",
        "return sum(1 for i in range(len(nums) - 1) if nums[i + 1] > nums[i])",
        _NEIGHBOURS,
        _NUMS,
    ),
    # ------------------------------------------------------------------ a running value over a list
    _problem(
        "running", "max",
        """Given a list of integers nums, return a list of the same length whose element i is the largest of
        nums[0], ..., nums[i]. An empty list gives an empty list.""",
        "def runningMax(self, nums: List[int]) -> List[int]:",
        "return list(accumulate(nums, max))",
        [{"nums": [1, 3, 2, 5]}, {"nums": [4, -1, 6, 6]}, {"nums": [-3, -5, -2]}, {"nums": []}, {"nums": [0]},
         {"nums": [7]}, {"nums": [5, 4, 3, 2]}, {"nums": [2, 2, 2]}, {"nums": [-1000, 1000, 0]},
         {"nums": [1, 2, 3, 4]}, {"nums": [0, -1, 0, 1]}, {"nums": [9, 1, 10, 1]}],
        _NUMS,
    ),
    _problem(
        "running", "min",
        """Given a list of integers nums, return a list of the same length whose element i is the smallest of
        nums[0], ..., nums[i]. An empty list gives an empty list.""",
        "def runningMin(self, nums: List[int]) -> List[int]:",
        "return list(accumulate(nums, min))",
        [{"nums": [5, 3, 4, 1]}, {"nums": [4, -1, 6, -1]}, {"nums": [-3, -5, -2]}, {"nums": []},
         {"nums": [0]}, {"nums": [7]}, {"nums": [2, 3, 4, 5]}, {"nums": [2, 2, 2]},
         {"nums": [1000, -1000, 0]}, {"nums": [4, 3, 2, 1]}, {"nums": [0, 1, 0, -1]},
         {"nums": [9, 10, 1, 10]}],
        _NUMS,
    ),
    _problem(
        "running", "product",
        """Given a list of integers nums, return a list of the same length whose element i is the product
        nums[0] * nums[1] * ... * nums[i]. An empty list gives an empty list.""",
        "def runningProduct(self, nums: List[int]) -> List[int]:",
        "return list(accumulate(nums, lambda x, y: x * y))",
        [{"nums": [1, 2, 3, 4]}, {"nums": [2, -1, 3]}, {"nums": [5, 0, 7]}, {"nums": []}, {"nums": [0]},
         {"nums": [-4]}, {"nums": [1, 1, 1]}, {"nums": [-1, -1, -1, -1]}, {"nums": [10, 10, 10]},
         {"nums": [3, 3]}, {"nums": [-2, 5, -3]}, {"nums": [2, 2, 2, 2, 2]}],
        ["0 <= len(nums) <= 10", "-10 <= nums[i] <= 10"],
    ),
    # ------------------------------------------------------------------ a label for every element of a list
    _problem(
        "classify", "parity",
        """Given a list of integers nums, return a list of the same length holding 'even' for every even
        element and 'odd' for every odd element, in order.""",
        "def parityLabels(self, nums: List[int]) -> List[str]:",
        "return ['even' if x % 2 == 0 else 'odd' for x in nums]",
        [{"nums": [1, 2, 3]}, {"nums": [4, 4, 7]}, {"nums": [-3, 0, -8]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1]}, {"nums": [2, 2, 2]}, {"nums": [1000, 999]}, {"nums": [11, 13, 15]},
         {"nums": [-2, -4, 5]}, {"nums": [6]}],
        _NUMS,
    ),
    _problem(
        "classify", "sign",
        """Given a list of integers nums, return a list of the same length holding 'positive' for every
        element greater than 0, 'negative' for every element less than 0 and 'zero' for every 0, in order.""",
        "def signLabels(self, nums: List[int]) -> List[str]:",
        "return ['positive' if x > 0 else 'negative' if x < 0 else 'zero' for x in nums]",
        [{"nums": [3, -2, 0]}, {"nums": [5, 5]}, {"nums": [-1, -7, 4]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1]}, {"nums": [0, 0, 0]}, {"nums": [1000, -1000]}, {"nums": [2, 0, -2]},
         {"nums": [-9, -9]}, {"nums": [8, 9, 10]}],
        _NUMS,
    ),
    _problem(
        "classify", "sign_value",
        """Given a list of integers nums, return a list of the same length holding 1 for every element greater
        than 0, -1 for every element less than 0 and 0 for every 0, in order.""",
        "def signValues(self, nums: List[int]) -> List[int]:",
        "return [1 if x > 0 else -1 if x < 0 else 0 for x in nums]",
        [{"nums": [3, -2, 0]}, {"nums": [5, 5]}, {"nums": [-1, -7, 4]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1]}, {"nums": [0, 0, 0]}, {"nums": [1000, -1000]}, {"nums": [2, 0, -2]},
         {"nums": [-9, -9]}, {"nums": [8, 9, 10]}],
        _NUMS,
    ),
    _problem(
        "classify", "against_k",
        """Given a list of integers nums and an integer k, return a list of the same length holding 'above'
        for every element greater than k, 'below' for every element less than k and 'equal' for every element
        equal to k, in order.""",
        "def compareToK(self, nums: List[int], k: int) -> List[str]:",
        "return ['above' if x > k else 'below' if x < k else 'equal' for x in nums]",
        [{"nums": [1, 5, 9], "k": 5}, {"nums": [2, 2], "k": 3}, {"nums": [-4, 0, 4], "k": -4},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [7], "k": 6}, {"nums": [7], "k": 8},
         {"nums": [3, 3, 3], "k": 3}, {"nums": [1000, -1000], "k": 0}, {"nums": [-1, -2, -3], "k": -2},
         {"nums": [10, 20, 30], "k": 100}, {"nums": [6, 1, 6], "k": 1}],
        _NUMS_K,
    ),
    # ------------------------------------------------------------------ count the words with a property
    _problem(
        "word_count", "longer_than_k",
        """Given a string s and an integer k, return how many of its words have more than k characters. A word
        is a maximal run of non-space characters.""",
        "def countLongWords(self, s: str, k: int) -> int:",
        "return sum(1 for w in s.split() if len(w) > k)",
        [{"s": "the quick brown fox", "k": 3}, {"s": "a bb ccc", "k": 1}, {"s": "  hello   world ", "k": 5},
         {"s": "", "k": 0}, {"s": "   ", "k": 0}, {"s": "x", "k": 0}, {"s": "x", "k": 1},
         {"s": "one two six", "k": 2}, {"s": "supercalifragilistic is long", "k": 4},
         {"s": "a b c d", "k": 0}, {"s": "same same same", "k": 3}, {"s": "Hello, World!", "k": 5}],
        ["0 <= len(s) <= 100", "s consists of printable ASCII characters.", "0 <= k <= 100"],
    ),
    _problem(
        "word_count", "capitalized",
        """Given a string s, return how many of its words start with an uppercase letter. A word is a maximal
        run of non-space characters.""",
        "def countCapitalizedWords(self, s: str) -> int:",
        "return sum(1 for w in s.split() if w[0].isupper())",
        [{"s": "Alice met Bob"}, {"s": "no capitals here"}, {"s": "  Hello   World "}, {"s": ""},
         {"s": "   "}, {"s": "A"}, {"s": "a"}, {"s": "iPhone and Android"}, {"s": "ALL CAPS WORDS"},
         {"s": "1st Place"}, {"s": "x Y z"}, {"s": "Paris Paris paris"}],
        _S,
    ),
    _problem(
        "word_count", "equal_w",
        """Given a string s and a word w, return how many words of s are exactly equal to w (uppercase and
        lowercase letters differ). A word is a maximal run of non-space characters.""",
        "def countWord(self, s: str, w: str) -> int:",
        "return s.split().count(w)",
        [{"s": "the cat and the hat", "w": "the"}, {"s": "a b a b a", "w": "b"},
         {"s": "dog Dog DOG", "w": "dog"}, {"s": "", "w": "x"}, {"s": "   ", "w": "a"}, {"s": "x", "w": "x"},
         {"s": "x", "w": "y"}, {"s": "go go go go", "w": "go"}, {"s": "there the then", "w": "the"},
         {"s": "  hi  hi ", "w": "hi"}, {"s": "one two three", "w": "four"}, {"s": "1 2 1 2 1", "w": "1"}],
        ["0 <= len(s) <= 100", "s consists of printable ASCII characters.",
         "1 <= len(w) <= 10, and w contains no spaces."],
    ),
    _problem(
        "word_count", "with_digit",
        """Given a string s, return how many of its words contain at least one digit 0 to 9. A word is a
        maximal run of non-space characters.""",
        "def countWordsWithDigit(self, s: str) -> int:",
        "return sum(1 for w in s.split() if any(c.isdigit() for c in w))",
        [{"s": "room 101 on floor 3"}, {"s": "no digits here"}, {"s": "a1 b2 c3"}, {"s": ""}, {"s": "   "},
         {"s": "7"}, {"s": "x"}, {"s": "R2D2 and C3PO"}, {"s": "  42   "}, {"s": "2024-01-01 was fun"},
         {"s": "one 1 two 2 2"}, {"s": "Hello, World!"}],
        _S,
    ),
    # ------------------------------------------------------------------ build a new string
    _problem(
        "build_str", "repeat",
        """Given a string s and a non-negative integer k, return k copies of s written one after another (an
        empty string for k = 0).""",
        "def repeatString(self, s: str, k: int) -> str:",
        "return s * k",
        [{"s": "ab", "k": 3}, {"s": "hi ", "k": 2}, {"s": "xyz", "k": 1}, {"s": "", "k": 5},
         {"s": "a", "k": 0}, {"s": "a", "k": 1}, {"s": "-", "k": 10}, {"s": "abc", "k": 0},
         {"s": "Na", "k": 4}, {"s": "  ", "k": 2}, {"s": "12", "k": 3}, {"s": "Hello", "k": 2}],
        ["0 <= len(s) <= 20", "0 <= k <= 20"],
    ),
    _problem(
        "build_str", "interleave",
        """Given two strings a and b, return the string made by taking one character from a, then one from b,
        and so on; when one string runs out, the rest of the other is added at the end.""",
        "def interleaveStrings(self, a: str, b: str) -> str:",
        "return ''.join(x + y for x, y in zip(a, b)) + a[len(b):] + b[len(a):]",
        [{"a": "abc", "b": "123"}, {"a": "ab", "b": "wxyz"}, {"a": "hello", "b": "HI"}, {"a": "", "b": ""},
         {"a": "", "b": "xyz"}, {"a": "xyz", "b": ""}, {"a": "a", "b": "b"}, {"a": "aaa", "b": "aaa"},
         {"a": "1", "b": "234"}, {"a": "  ", "b": "--"}, {"a": "abcd", "b": "1"}, {"a": "Hi", "b": "Yo!"}],
        ["0 <= len(a), len(b) <= 50", "a and b consist of printable ASCII characters."],
    ),
    _problem(
        "build_str", "pad_left",
        """Given a string s and a non-negative integer n, return s with '*' characters added on its left so
        that it has n characters; if s already has n or more characters, return it unchanged.""",
        "def padLeft(self, s: str, n: int) -> str:",
        "return '*' * (n - len(s)) + s",
        [{"s": "abc", "n": 6}, {"s": "hello", "n": 3}, {"s": "7", "n": 2}, {"s": "", "n": 0},
         {"s": "", "n": 3}, {"s": "x", "n": 0}, {"s": "x", "n": 1}, {"s": "ab", "n": 2}, {"s": "42", "n": 5},
         {"s": "a b", "n": 4}, {"s": "**", "n": 4}, {"s": "Hello, World!", "n": 15}],
        ["0 <= len(s) <= 50", "s consists of printable ASCII characters.", "0 <= n <= 100"],
    ),
    _problem(
        "build_str", "double_chars",
        """Given a string s, return a string in which every character of s is written twice in a row, in the
        same order.""",
        "def doubleChars(self, s: str) -> str:",
        "return ''.join(c * 2 for c in s)",
        [{"s": "abc"}, {"s": "hi there"}, {"s": "x1!"}, {"s": ""}, {"s": "a"}, {"s": " "}, {"s": "aa"},
         {"s": "123"}, {"s": "Hello"}, {"s": "--"}, {"s": "AbC"}, {"s": "z y"}],
        _S,
    ),
    # ------------------------------------------------------------------ index of the first element of a kind
    _problem(
        "find_first", "negative",
        """Given a list of integers nums, return the index of its first negative element (less than 0), or -1
        if it has none.""",
        "def firstNegativeIndex(self, nums: List[int]) -> int:",
        "return next((i for i, x in enumerate(nums) if x < 0), -1)",
        [{"nums": [3, -1, 4, -5]}, {"nums": [1, 2, 3]}, {"nums": [-7, 8]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [0, 0, -2]}, {"nums": [-3, -3, -3]}, {"nums": [5, 6, 7, 8, -1000]},
         {"nums": [1000]}, {"nums": [2, -2, 2, -2]}, {"nums": [0, 1, 0]}],
        _NUMS,
    ),
    _problem(
        "find_first", "even",
        """Given a list of integers nums, return the index of its first even element, or -1 if it has
        none.""",
        "def firstEvenIndex(self, nums: List[int]) -> int:",
        "return next((i for i, x in enumerate(nums) if x % 2 == 0), -1)",
        [{"nums": [3, 5, 4, 8]}, {"nums": [1, 3, 7]}, {"nums": [6, 1]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-3, -4, -5]}, {"nums": [2, 2, 2]}, {"nums": [9, 9, 9, 9, 1000]},
         {"nums": [-1]}, {"nums": [11, 13, -2, 4]}, {"nums": [7, 0, 7]}],
        _NUMS,
    ),
    _problem(
        "find_first", "greater_than_k",
        """Given a list of integers nums and an integer k, return the index of the first element of nums that
        is strictly greater than k, or -1 if there is none.""",
        "def firstGreaterIndex(self, nums: List[int], k: int) -> int:",
        "return next((i for i, x in enumerate(nums) if x > k), -1)",
        [{"nums": [1, 5, 8, 2], "k": 4}, {"nums": [3, 3, 3], "k": 3}, {"nums": [-1, 0, 2], "k": -1},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [7], "k": 6}, {"nums": [7], "k": 7},
         {"nums": [-5, -3, -1], "k": -4}, {"nums": [10, 20, 30], "k": 100}, {"nums": [2, 2, 9, 9], "k": 2},
         {"nums": [100, -100, 50], "k": -1000}, {"nums": [4, 1, 4], "k": 1}],
        _NUMS_K,
    ),
    # ------------------------------------------------------------------ keep values within bounds
    _problem(
        "clamp", "list_range",
        """Given a list of integers nums and two integers lo <= hi, return a new list in which every element
        less than lo is replaced by lo and every element greater than hi is replaced by hi.""",
        "def clampAll(self, nums: List[int], lo: int, hi: int) -> List[int]:",
        "return [min(max(x, lo), hi) for x in nums]",
        [{"nums": [1, 5, 10], "lo": 2, "hi": 8}, {"nums": [-7, 0, 7], "lo": -3, "hi": 3},
         {"nums": [4, 4], "lo": 5, "hi": 9}, {"nums": [], "lo": 0, "hi": 1}, {"nums": [0], "lo": 0, "hi": 0},
         {"nums": [-1], "lo": 0, "hi": 10}, {"nums": [11], "lo": 0, "hi": 10},
         {"nums": [3, 3, 3], "lo": 3, "hi": 3}, {"nums": [1000, -1000], "lo": -5, "hi": 5},
         {"nums": [2, 4, 6], "lo": 1, "hi": 9}, {"nums": [-9, -5, -1], "lo": -6, "hi": -2},
         {"nums": [0, 10, 20, 30], "lo": 10, "hi": 20}],
        ["0 <= len(nums) <= 100", "-1000 <= nums[i] <= 1000", "-1000 <= lo <= hi <= 1000"],
    ),
    _problem(
        "clamp", "negatives_to_zero",
        """Given a list of integers nums, return a new list in which every negative element is replaced by 0
        and every other element stays as it is.""",
        "def zeroNegatives(self, nums: List[int]) -> List[int]:",
        "return [max(x, 0) for x in nums]",
        [{"nums": [3, -2, 5]}, {"nums": [-1, -1]}, {"nums": [0, 4, -9]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [1]}, {"nums": [2, 2, 2]}, {"nums": [1000, -1000]}, {"nums": [-5, 0, 5]},
         {"nums": [7, 8, 9]}, {"nums": [-3, -2, -1, 0]}],
        _NUMS,
    ),
    _problem(
        "clamp", "cap_k",
        """Given a list of integers nums and an integer k, return a new list in which every element greater
        than k is replaced by k and every other element stays as it is.""",
        "def capAt(self, nums: List[int], k: int) -> List[int]:",
        "return [min(x, k) for x in nums]",
        [{"nums": [1, 5, 9], "k": 6}, {"nums": [10, 20], "k": 15}, {"nums": [-4, 0, 4], "k": -2},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [7], "k": 6}, {"nums": [7], "k": 8},
         {"nums": [3, 3, 3], "k": 3}, {"nums": [1000, -1000], "k": 0}, {"nums": [-1, -2, -3], "k": -2},
         {"nums": [10, 20, 30], "k": 100}, {"nums": [6, 1, 6], "k": 1}],
        _NUMS_K,
    ),
    _problem(
        "clamp", "number",
        """Given integers n, lo and hi with lo <= hi, return lo if n is less than lo, hi if n is greater than
        hi, and n itself otherwise.""",
        "def clampNumber(self, n: int, lo: int, hi: int) -> int:",
        "return min(max(n, lo), hi)",
        [{"n": 15, "lo": 0, "hi": 10}, {"n": -5, "lo": 0, "hi": 10}, {"n": 7, "lo": 0, "hi": 10},
         {"n": 0, "lo": 0, "hi": 0}, {"n": 1, "lo": 0, "hi": 0}, {"n": -1, "lo": 0, "hi": 0},
         {"n": 0, "lo": 1, "hi": 5}, {"n": 5, "lo": 1, "hi": 5}, {"n": -10, "lo": -20, "hi": -15},
         {"n": -30, "lo": -20, "hi": -15}, {"n": 1000000, "lo": -1000, "hi": 1000},
         {"n": 3, "lo": 3, "hi": 3}],
        ["-10^6 <= n <= 10^6", "-1000 <= lo <= hi <= 1000"],
    ),
    # ------------------------------------------------------------------ any / all elements of a list
    _problem(
        "any_all", "any_negative",
        """Given a list of integers nums, return True if at least one element is negative (less than 0), and
        False otherwise. An empty list has no negative element.""",
        "def anyNegative(self, nums: List[int]) -> bool:",
        "return any(x < 0 for x in nums)",
        [{"nums": [3, -1, 4]}, {"nums": [1, 2, 3]}, {"nums": [-7, -8]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [1]}, {"nums": [0, 0, 0]}, {"nums": [5, 6, 7, 8, -1000]}, {"nums": [1000]},
         {"nums": [2, 2, 2]}, {"nums": [0, -1, 0]}],
        _NUMS,
    ),
    _problem(
        "any_all", "all_even",
        """Given a list of integers nums, return True if every element is even, and False otherwise. Every
        element of an empty list is even.""",
        "def allEven(self, nums: List[int]) -> bool:",
        "return all(x % 2 == 0 for x in nums)",
        [{"nums": [2, 4, 6]}, {"nums": [2, 3, 4]}, {"nums": [-8, 0, 10]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1]}, {"nums": [-2]}, {"nums": [4, 4, 4]}, {"nums": [1000, 999]},
         {"nums": [6, 8, 10, 12, 13]}, {"nums": [7, 7]}],
        _NUMS,
    ),
    _problem(
        "any_all", "all_positive",
        """Given a list of integers nums, return True if every element is positive (greater than 0), and False
        otherwise. Every element of an empty list is positive.""",
        "def allPositive(self, nums: List[int]) -> bool:",
        "return all(x > 0 for x in nums)",
        [{"nums": [1, 2, 3]}, {"nums": [4, -1, 6]}, {"nums": [9, 0]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1]}, {"nums": [5, 5, 5]}, {"nums": [1000, -1000]}, {"nums": [7, 8, 9, 10]},
         {"nums": [-2, -3]}, {"nums": [3, 2, 1, 0]}],
        _NUMS,
    ),
    _problem(
        "any_all", "has_zero",
        """Given a list of integers nums, return True if at least one element is equal to 0, and False
        otherwise.""",
        "def containsZero(self, nums: List[int]) -> bool:",
        "return 0 in nums",
        [{"nums": [3, 0, 4]}, {"nums": [1, 2, 3]}, {"nums": [-7, 8]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [1]}, {"nums": [0, 0, 0]}, {"nums": [5, 6, 7, 8, 0]},
         {"nums": [1000, -1000]}, {"nums": [2, 2, 2]}, {"nums": [-1, 0, 1]}],
        _NUMS,
    ),
    # ------------------------------------------------------------------ the two ends of a list
    _problem(
        "ends", "sum",
        """Given a non-empty list of integers nums, return the sum of its first and its last element. A list
        with one element counts it as both, so the result is twice that element.""",
        "def sumOfEnds(self, nums: List[int]) -> int:",
        "return nums[0] + nums[-1]",
        [{"nums": [1, 2, 3]}, {"nums": [10, -4, 7, 5]}, {"nums": [-6, -9]}, {"nums": [0]}, {"nums": [7]},
         {"nums": [-1]}, {"nums": [2, 2, 2]}, {"nums": [1000, 0, -1000]}, {"nums": [5, 1, 1, 1, 5]},
         {"nums": [0, 9]}, {"nums": [3, -3]}, {"nums": [1, 2, 3, 4, 5, 6]}],
        _NONEMPTY,
    ),
    _problem(
        "ends", "swap",
        """Given a list of integers nums, return a new list with its first and last elements swapped and the
        rest unchanged. A list with fewer than 2 elements is returned as it is.""",
        "def swapEnds(self, nums: List[int]) -> List[int]:",
        """
        if len(nums) < 2:
            return nums
        return [nums[-1]] + nums[1:-1] + [nums[0]]
        """,
        [{"nums": [1, 2, 3]}, {"nums": [10, -4, 7, 5]}, {"nums": [-6, -9]}, {"nums": []}, {"nums": [0]},
         {"nums": [7]}, {"nums": [2, 2, 2]}, {"nums": [1000, 0, -1000]}, {"nums": [5, 1, 1, 1, 6]},
         {"nums": [0, 9]}, {"nums": [3, 3]}, {"nums": [1, 2, 3, 4, 5, 6]}],
        _NUMS,
    ),
    _problem(
        "ends", "without",
        """Given a list of integers nums, return a new list without its first and its last element. A list
        with fewer than 3 elements gives an empty list.""",
        "def withoutEnds(self, nums: List[int]) -> List[int]:",
        "return nums[1:-1]",
        [{"nums": [1, 2, 3]}, {"nums": [10, -4, 7, 5]}, {"nums": [-6, -9, -1, -2, -3]}, {"nums": []},
         {"nums": [0]}, {"nums": [7, 8]}, {"nums": [2, 2, 2]}, {"nums": [1000, 0, -1000]},
         {"nums": [5, 1, 1, 1, 6]}, {"nums": [0, 9, 0]}, {"nums": [-3, 3]}, {"nums": [1, 2, 3, 4, 5, 6]}],
        _NUMS,
    ),
    # ------------------------------------------------------------------ minutes, hours and seconds
    _problem(
        "time", "hours",
        """Given a non-negative number of minutes n, return how many whole hours it contains (60 minutes
        make an hour).""",
        "def wholeHours(self, n: int) -> int:",
        "return n // 60",
        [{"n": 135}, {"n": 60}, {"n": 59}, {"n": 0}, {"n": 1}, {"n": 61}, {"n": 120}, {"n": 119},
         {"n": 1440}, {"n": 1000000}, {"n": 600}, {"n": 90}],
        _MINUTES,
    ),
    _problem(
        "time", "leftover_minutes",
        """Given a non-negative number of minutes n, return how many minutes are left over after taking
        out all the whole hours (60 minutes make an hour).""",
        "def leftoverMinutes(self, n: int) -> int:",
        "return n % 60",
        [{"n": 135}, {"n": 60}, {"n": 59}, {"n": 0}, {"n": 1}, {"n": 61}, {"n": 120}, {"n": 119},
         {"n": 1440}, {"n": 1000000}, {"n": 601}, {"n": 90}],
        _MINUTES,
    ),
    _problem(
        "time", "to_seconds",
        """Given non-negative integers h, m and s, a duration of h hours, m minutes and s seconds, return the
        duration in seconds.""",
        "def toSeconds(self, h: int, m: int, s: int) -> int:",
        "return h * 3600 + m * 60 + s",
        [{"h": 1, "m": 2, "s": 3}, {"h": 0, "m": 10, "s": 0}, {"h": 2, "m": 0, "s": 59},
         {"h": 0, "m": 0, "s": 0}, {"h": 0, "m": 0, "s": 1}, {"h": 0, "m": 1, "s": 0},
         {"h": 1, "m": 0, "s": 0}, {"h": 3, "m": 3, "s": 3}, {"h": 23, "m": 59, "s": 59},
         {"h": 100, "m": 0, "s": 0}, {"h": 0, "m": 59, "s": 60}, {"h": 12, "m": 30, "s": 15}],
        ["0 <= h <= 1000", "0 <= m, s <= 1000"],
    ),
    _problem(
        "time", "format",
        """Given a non-negative number of minutes n, return it as a string 'H:MM': the number of whole
        hours, a colon, then the leftover minutes written with exactly two digits.""",
        "def formatTime(self, n: int) -> str:",
        "return f'{n // 60}:{n % 60:02d}'",
        [{"n": 135}, {"n": 60}, {"n": 59}, {"n": 0}, {"n": 1}, {"n": 61}, {"n": 120}, {"n": 119},
         {"n": 1440}, {"n": 1000000}, {"n": 605}, {"n": 90}],
        _MINUTES,
    ),
    # ------------------------------------------------------------------ make a list of integers
    _problem(
        "make_list", "range",
        """Given a non-negative integer n, return the list [0, 1, 2, ..., n - 1] (an empty list for
        n = 0).""",
        "def rangeList(self, n: int) -> List[int]:",
        "return list(range(n))",
        [{"n": 4}, {"n": 7}, {"n": 2}, {"n": 0}, {"n": 1}, {"n": 3}, {"n": 5}, {"n": 10}, {"n": 12},
         {"n": 6}, {"n": 8}, {"n": 15}],
        _COUNT,
    ),
    _problem(
        "make_list", "repeat_value",
        """Given an integer v and a non-negative integer n, return a list that holds v exactly n times.""",
        "def repeatValue(self, v: int, n: int) -> List[int]:",
        "return [v] * n",
        [{"v": 7, "n": 3}, {"v": -2, "n": 4}, {"v": 5, "n": 1}, {"v": 9, "n": 0}, {"v": 0, "n": 0},
         {"v": 0, "n": 2}, {"v": -1, "n": 1}, {"v": 1000, "n": 2}, {"v": 3, "n": 6}, {"v": -1000, "n": 3},
         {"v": 1, "n": 10}, {"v": 42, "n": 5}],
        ["-1000 <= v <= 1000", "0 <= n <= 100"],
    ),
    _problem(
        "make_list", "countdown",
        """Given a non-negative integer n, return the list [n, n - 1, ..., 2, 1] (an empty list for
        n = 0).""",
        "def countdown(self, n: int) -> List[int]:",
        "return list(range(n, 0, -1))",
        [{"n": 4}, {"n": 7}, {"n": 2}, {"n": 0}, {"n": 1}, {"n": 3}, {"n": 5}, {"n": 10}, {"n": 12},
         {"n": 6}, {"n": 8}, {"n": 15}],
        _COUNT,
    ),
    _problem(
        "make_list", "evens_up_to",
        """Given a non-negative integer n, return the list of the even numbers from 0 up to n (n included when
        it is even), in increasing order.""",
        "def evensUpTo(self, n: int) -> List[int]:",
        "return list(range(0, n + 1, 2))",
        [{"n": 6}, {"n": 9}, {"n": 4}, {"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}, {"n": 10}, {"n": 11},
         {"n": 15}, {"n": 20}, {"n": 7}],
        _COUNT,
    ),
]
# fmt: on

FAMILIES: dict[str, list[str]] = {}
for _d in PROBLEMS:
    FAMILIES.setdefault(_d["family"], []).append(_d["id"])
