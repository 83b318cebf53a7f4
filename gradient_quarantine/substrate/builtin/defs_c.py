"""Built-in problem set C: 48 very easy problems in 14 FAMILIES, for a policy that has to learn to solve.

A family is one task with several instances that differ in a constant, a name or a small detail ("the largest
digit" / "the smallest digit" / "the number of odd digits"), so a policy that learns one instance has a real
chance on its siblings. The canonical solutions are one to three lines, the statements plain; every problem
keeps >= 10 tests (empty, zero, single, negative and duplicate cases among them) so that special-casing the 3
visible examples fails. Ids read `c_<family>__<instance>` (e.g. `c_digits__largest`): the family is the part
before the double underscore (`substrate.problems.family_of`), and each definition (and built row) also carries
it as `family`. This set builds to `problems_c.jsonl` (`build.py`): `data.problems: builtin_c` is this set alone,
`builtin_all` it beside the 96 of sets A and B (which stay `builtin`, unchanged).

    from gradient_quarantine.substrate.builtin.defs_c import PROBLEMS, FAMILIES
    from gradient_quarantine.substrate.builtin.build import build_row
    rows = [build_row(d) for d in PROBLEMS]
"""

from __future__ import annotations

from gradient_quarantine.substrate.builtin.defs_a import _problem as definition

SET = "builtin_c"  # build.py writes the definitions of this module to problems_c.jsonl, not problems.jsonl
PREFIX = "c_"
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


_N = ["0 <= n <= 10^9"]
_NUMS = ["0 <= len(nums) <= 100", "-1000 <= nums[i] <= 1000"]
_NUMS_K = [*_NUMS, "-1000 <= k <= 1000"]
_NONEMPTY = ["1 <= len(nums) <= 100", "-1000 <= nums[i] <= 1000"]
_S = ["0 <= len(s) <= 100", "s consists of printable ASCII characters."]
_AB = ["0 <= len(a) == len(b) <= 50", "-1000 <= a[i], b[i] <= 1000"]

# The test lists are data tables, kept several dicts to a line so a problem fits on one screen.
# fmt: off
PROBLEMS: list[dict] = [
    # ------------------------------------------------------------------ digits of a non-negative integer
    _problem(
        "digits", "largest",
        """Given a non-negative integer n, return the largest of its decimal digits.""",
        "def largestDigit(self, n: int) -> int:",
        "return max(int(d) for d in str(n))",
        [{"n": 4821}, {"n": 505}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 99}, {"n": 123456789},
         {"n": 1000000}, {"n": 31}, {"n": 808}, {"n": 246}, {"n": 1000000000}],
        _N,
    ),
    _problem(
        "digits", "smallest",
        """Given a non-negative integer n, return the smallest of its decimal digits.""",
        "def smallestDigit(self, n: int) -> int:",
        "return min(int(d) for d in str(n))",
        [{"n": 4821}, {"n": 953}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 99}, {"n": 123456789},
         {"n": 1000000}, {"n": 55}, {"n": 808}, {"n": 967}, {"n": 1000000000}],
        _N,
    ),
    _problem(
        "digits", "count_odd",
        """Given a non-negative integer n, return how many of its decimal digits are odd.""",
        "def countOddDigits(self, n: int) -> int:",
        "return sum(1 for d in str(n) if int(d) % 2 == 1)",
        [{"n": 12345}, {"n": 2468}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 99}, {"n": 13579},
         {"n": 1000000}, {"n": 1010101}, {"n": 86420}, {"n": 111}, {"n": 987654321}],
        _N,
    ),
    _problem(
        "digits", "sum_squares",
        """Given a non-negative integer n, return the sum of the squares of its decimal digits.""",
        "def sumOfDigitSquares(self, n: int) -> int:",
        "return sum(int(d) ** 2 for d in str(n))",
        [{"n": 12}, {"n": 303}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 99}, {"n": 1000000},
         {"n": 111}, {"n": 123456789}, {"n": 9}, {"n": 4096}, {"n": 2020}],
        _N,
    ),
    # ------------------------------------------------------------------ sum of (some) elements of a list
    _problem(
        "list_sum", "all",
        """Given a list of integers nums, return the sum of its elements. The sum of an empty list is 0.""",
        "def sumList(self, nums: List[int]) -> int:",
        "return sum(nums)",
        [{"nums": [1, 2, 3]}, {"nums": [5, -2, 8, 0]}, {"nums": [7]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1, -2, -3]}, {"nums": [100, -100]}, {"nums": [1, 1, 1, 1, 1]},
         {"nums": [1000, 1000, 1000]}, {"nums": [-5]}, {"nums": [3, -3, 3]}, {"nums": [4, 9, 16, 25]}],
        _NUMS,
    ),
    _problem(
        "list_sum", "even",
        """Given a list of integers nums, return the sum of its even elements. If there are none, return 0.""",
        "def sumEven(self, nums: List[int]) -> int:",
        "return sum(x for x in nums if x % 2 == 0)",
        [{"nums": [1, 2, 3, 4]}, {"nums": [5, 7, 9]}, {"nums": [10, -2, 3]}, {"nums": []}, {"nums": [0]},
         {"nums": [-2, -4]}, {"nums": [2, 2, 2]}, {"nums": [1]}, {"nums": [-3, 6, -8, 5]},
         {"nums": [100, 101, 102]}, {"nums": [7, 0, 7]}, {"nums": [12]}],
        _NUMS,
    ),
    _problem(
        "list_sum", "positive",
        """Given a list of integers nums, return the sum of its positive elements (those greater than 0). If
        there are none, return 0.""",
        "def sumPositive(self, nums: List[int]) -> int:",
        "return sum(x for x in nums if x > 0)",
        [{"nums": [1, -2, 3]}, {"nums": [-5, -7]}, {"nums": [4, 0, 6]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [9]}, {"nums": [2, 2, -2, 2]}, {"nums": [1000, -1000, 1]},
         {"nums": [-3, 0, 0, 5]}, {"nums": [10, 20, 30]}, {"nums": [-8, 8]}],
        _NUMS,
    ),
    _problem(
        "list_sum", "greater_than_k",
        """Given a list of integers nums and an integer k, return the sum of the elements of nums that are
        strictly greater than k. If there are none, return 0.""",
        "def sumGreaterThan(self, nums: List[int], k: int) -> int:",
        "return sum(x for x in nums if x > k)",
        [{"nums": [1, 5, 8, 2], "k": 4}, {"nums": [3, 3, 3], "k": 3}, {"nums": [-1, 0, 2], "k": -1},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [7], "k": 6}, {"nums": [7], "k": 7},
         {"nums": [-5, -3, -1], "k": -4}, {"nums": [10, 20, 30], "k": 100}, {"nums": [2, 2, 9, 9], "k": 2},
         {"nums": [100, -100, 50], "k": 0}, {"nums": [4, 1, 4], "k": 1}],
        _NUMS_K,
    ),
    # ------------------------------------------------------------------ count (some) elements of a list
    _problem(
        "list_count", "odd",
        """Given a list of integers nums, return how many of its elements are odd.""",
        "def countOdd(self, nums: List[int]) -> int:",
        "return sum(1 for x in nums if x % 2 != 0)",
        [{"nums": [1, 2, 3]}, {"nums": [2, 4, 6, 8]}, {"nums": [-3, 5, -7]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-1, -2]}, {"nums": [9, 9, 9, 9]}, {"nums": [10, 11, 12, 13, 14]},
         {"nums": [1000, 999]}, {"nums": [0, 0, 1]}, {"nums": [2]}],
        _NUMS,
    ),
    _problem(
        "list_count", "negative",
        """Given a list of integers nums, return how many of its elements are negative (less than 0).""",
        "def countNegative(self, nums: List[int]) -> int:",
        "return sum(1 for x in nums if x < 0)",
        [{"nums": [-1, 2, -3]}, {"nums": [4, 5]}, {"nums": [-7]}, {"nums": []}, {"nums": [0]},
         {"nums": [0, -1, 0]}, {"nums": [-2, -2, -2, -2]}, {"nums": [1000, -1000]}, {"nums": [3]},
         {"nums": [-5, 5, -5, 5, -5]}, {"nums": [1, 2, 3, -4]}, {"nums": [-10, -20, 0, 10]}],
        _NUMS,
    ),
    _problem(
        "list_count", "zeros",
        """Given a list of integers nums, return how many of its elements are equal to 0.""",
        "def countZeros(self, nums: List[int]) -> int:",
        "return nums.count(0)",
        [{"nums": [0, 1, 0]}, {"nums": [5, 6, 7]}, {"nums": [0]}, {"nums": []}, {"nums": [1]},
         {"nums": [0, 0, 0, 0]}, {"nums": [-1, 0, 1]}, {"nums": [10, 100, 1000]}, {"nums": [0, 3, 0]},
         {"nums": [7, 0, 7, 0, 7]}, {"nums": [-5]}, {"nums": [2, 0]}],
        _NUMS,
    ),
    _problem(
        "list_count", "equal_k",
        """Given a list of integers nums and an integer k, return how many elements of nums are equal to k.""",
        "def countEqual(self, nums: List[int], k: int) -> int:",
        "return nums.count(k)",
        [{"nums": [1, 2, 1, 3], "k": 1}, {"nums": [4, 5, 6], "k": 7}, {"nums": [-2, -2, -2], "k": -2},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [5], "k": 5}, {"nums": [5], "k": -5},
         {"nums": [3, 3, 3, 3, 3], "k": 3}, {"nums": [1, 2, 3, 4, 5], "k": 4}, {"nums": [9, 8, 9, 8], "k": 8},
         {"nums": [1000, -1000], "k": 1000}, {"nums": [0, 1, 0, 1, 0], "k": 0}],
        _NUMS_K,
    ),
    # ------------------------------------------------------------------ reverse a string
    _problem(
        "reverse", "string",
        """Given a string s, return s written backwards.""",
        "def reverseString(self, s: str) -> str:",
        "return s[::-1]",
        [{"s": "hello"}, {"s": "ab cd"}, {"s": "x"}, {"s": ""}, {"s": "racecar"}, {"s": "12345"},
         {"s": "aA"}, {"s": "  "}, {"s": "Hello, World!"}, {"s": "abba"}, {"s": "z y"}, {"s": "Python3"}],
        _S,
    ),
    _problem(
        "reverse", "upper",
        """Given a string s, return s written backwards with every letter changed to uppercase. Characters
        that are not letters stay as they are.""",
        "def reverseUpper(self, s: str) -> str:",
        "return s[::-1].upper()",
        [{"s": "hello"}, {"s": "ab cd"}, {"s": "x"}, {"s": ""}, {"s": "ABC"}, {"s": "12345"},
         {"s": "aA"}, {"s": "  "}, {"s": "Hello, World!"}, {"s": "abba"}, {"s": "z y"}, {"s": "Python3"}],
        _S,
    ),
    _problem(
        "reverse", "first_k",
        """Given a string s and an integer k with 0 <= k <= len(s), reverse the first k characters of s and
        return the result; the rest of s stays unchanged.""",
        "def reverseFirstK(self, s: str, k: int) -> str:",
        "return s[:k][::-1] + s[k:]",
        [{"s": "abcdef", "k": 3}, {"s": "hello", "k": 5}, {"s": "xyz", "k": 1}, {"s": "", "k": 0},
         {"s": "abc", "k": 0}, {"s": "a", "k": 1}, {"s": "ab", "k": 2}, {"s": "aabb", "k": 3},
         {"s": "hello world", "k": 5}, {"s": "12345", "k": 4}, {"s": "race car", "k": 8},
         {"s": "Zz", "k": 1}],
        ["0 <= k <= len(s) <= 100", "s consists of printable ASCII characters."],
    ),
    # ------------------------------------------------------------------ an extreme of a non-empty list
    _problem(
        "list_extreme", "max",
        """Given a non-empty list of integers nums, return its largest element.""",
        "def largest(self, nums: List[int]) -> int:",
        "return max(nums)",
        [{"nums": [3, 9, 2]}, {"nums": [-4, -1, -7]}, {"nums": [5]}, {"nums": [0]}, {"nums": [-1000]},
         {"nums": [2, 2, 2]}, {"nums": [1, 1000, -1000]}, {"nums": [0, -1]}, {"nums": [8, 8, 7]},
         {"nums": [-3, 0, 3]}, {"nums": [10, 20, 30, 40]}, {"nums": [40, 30, 20, 10]}],
        _NONEMPTY,
    ),
    _problem(
        "list_extreme", "min",
        """Given a non-empty list of integers nums, return its smallest element.""",
        "def smallest(self, nums: List[int]) -> int:",
        "return min(nums)",
        [{"nums": [3, 9, 2]}, {"nums": [-4, -1, -7]}, {"nums": [5]}, {"nums": [0]}, {"nums": [1000]},
         {"nums": [2, 2, 2]}, {"nums": [1, 1000, -1000]}, {"nums": [0, -1]}, {"nums": [7, 8, 7]},
         {"nums": [-3, 0, 3]}, {"nums": [10, 20, 30, 40]}, {"nums": [40, 30, 20, 10]}],
        _NONEMPTY,
    ),
    _problem(
        "list_extreme", "max_abs",
        """Given a non-empty list of integers nums, return the largest absolute value among its elements.""",
        "def largestAbsolute(self, nums: List[int]) -> int:",
        "return max(abs(x) for x in nums)",
        [{"nums": [3, -9, 2]}, {"nums": [-4, 1, 2]}, {"nums": [5]}, {"nums": [0]}, {"nums": [-1000]},
         {"nums": [2, -2, 2]}, {"nums": [1, 999, -1000]}, {"nums": [0, -1]}, {"nums": [8, 8, 7]},
         {"nums": [-3, 0, 3]}, {"nums": [10, -20, 30, -40]}, {"nums": [6, -5]}],
        _NONEMPTY,
    ),
    # ------------------------------------------------------------------ count characters of one kind
    _problem(
        "char_count", "uppercase",
        """Given a string s, return how many of its characters are uppercase letters.""",
        "def countUppercase(self, s: str) -> int:",
        "return sum(1 for c in s if c.isupper())",
        [{"s": "Hello World"}, {"s": "abc"}, {"s": "ABC def G"}, {"s": ""}, {"s": "A"}, {"s": "a"},
         {"s": "123 !?"}, {"s": "AaAaA"}, {"s": "camelCaseName"}, {"s": "NASA"}, {"s": "x Y z"},
         {"s": "Python 3.12"}],
        _S,
    ),
    _problem(
        "char_count", "lowercase",
        """Given a string s, return how many of its characters are lowercase letters.""",
        "def countLowercase(self, s: str) -> int:",
        "return sum(1 for c in s if c.islower())",
        [{"s": "Hello World"}, {"s": "ABC"}, {"s": "abc DEF g"}, {"s": ""}, {"s": "A"}, {"s": "a"},
         {"s": "123 !?"}, {"s": "AaAaA"}, {"s": "camelCaseName"}, {"s": "NASA"}, {"s": "x Y z"},
         {"s": "Python 3.12"}],
        _S,
    ),
    _problem(
        "char_count", "digits",
        """Given a string s, return how many of its characters are the digits 0 to 9.""",
        "def countDigitChars(self, s: str) -> int:",
        "return sum(1 for c in s if c.isdigit())",
        [{"s": "a1b2c3"}, {"s": "hello"}, {"s": "2024"}, {"s": ""}, {"s": "0"}, {"s": "o"},
         {"s": "-12"}, {"s": "1 2 3 4 5"}, {"s": "room 101"}, {"s": "Python 3.12"}, {"s": "!?"},
         {"s": "007"}],
        _S,
    ),
    _problem(
        "char_count", "spaces",
        """Given a string s, return how many of its characters are spaces (' ').""",
        "def countSpaces(self, s: str) -> int:",
        "return s.count(' ')",
        [{"s": "a b c"}, {"s": "hello"}, {"s": "  x  "}, {"s": ""}, {"s": " "}, {"s": "x"},
         {"s": "one two"}, {"s": "no_spaces_here"}, {"s": "a  b"}, {"s": "Hello, World!"}, {"s": "   "},
         {"s": "1 2 3 4 5"}],
        _S,
    ),
    # ------------------------------------------------------------------ transform a string
    _problem(
        "transform", "upper",
        """Given a string s, return it with every letter changed to uppercase. Characters that are not letters
        stay as they are.""",
        "def toUpper(self, s: str) -> str:",
        "return s.upper()",
        [{"s": "hello"}, {"s": "Hi There"}, {"s": "a1!"}, {"s": ""}, {"s": "ABC"}, {"s": "x"},
         {"s": "123"}, {"s": "mIxEd CaSe"}, {"s": "  "}, {"s": "snake_case"}, {"s": "z"},
         {"s": "Python 3.12"}],
        _S,
    ),
    _problem(
        "transform", "swapcase",
        """Given a string s, return it with every uppercase letter changed to lowercase and every lowercase
        letter changed to uppercase. Characters that are not letters stay as they are.""",
        "def swapCase(self, s: str) -> str:",
        "return s.swapcase()",
        [{"s": "Hello"}, {"s": "aBc DeF"}, {"s": "x1!"}, {"s": ""}, {"s": "ABC"}, {"s": "abc"},
         {"s": "123"}, {"s": "mIxEd CaSe"}, {"s": "  "}, {"s": "snake_Case"}, {"s": "Z"},
         {"s": "Python 3.12"}],
        _S,
    ),
    _problem(
        "transform", "remove_spaces",
        """Given a string s, return it with every space (' ') removed.""",
        "def removeSpaces(self, s: str) -> str:",
        "return s.replace(' ', '')",
        [{"s": "a b c"}, {"s": "hello"}, {"s": "  x  y "}, {"s": ""}, {"s": " "}, {"s": "x"},
         {"s": "one two three"}, {"s": "no_spaces_here"}, {"s": "a  b"}, {"s": "Hello, World!"},
         {"s": "   "}, {"s": "1 2 3"}],
        _S,
    ),
    _problem(
        "transform", "remove_vowels",
        """Given a string s, return it with every vowel removed. The vowels are a, e, i, o and u, in lowercase
        or uppercase; all other characters stay in order.""",
        "def removeVowels(self, s: str) -> str:",
        "return ''.join(c for c in s if c.lower() not in 'aeiou')",
        [{"s": "hello"}, {"s": "AEIOU xyz"}, {"s": "rhythm"}, {"s": ""}, {"s": "a"}, {"s": "b"},
         {"s": "Programming Is Fun!"}, {"s": "queue"}, {"s": "  "}, {"s": "OpenAI 2024"}, {"s": "yY"},
         {"s": "banana"}],
        _S,
    ),
    # ------------------------------------------------------------------ map every element of a list
    _problem(
        "list_map", "double",
        """Given a list of integers nums, return a new list where every element is multiplied by 2, in the
        same order.""",
        "def doubleAll(self, nums: List[int]) -> List[int]:",
        "return [2 * x for x in nums]",
        [{"nums": [1, 2, 3]}, {"nums": [-4, 0, 5]}, {"nums": [7]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [2, 2, 2]}, {"nums": [1000, -1000]}, {"nums": [3, 1, 2]},
         {"nums": [10, 20, 30, 40]}, {"nums": [-5, -6]}, {"nums": [9, 0, 9]}],
        _NUMS,
    ),
    _problem(
        "list_map", "square",
        """Given a list of integers nums, return a new list holding the square of every element, in the same
        order.""",
        "def squareAll(self, nums: List[int]) -> List[int]:",
        "return [x * x for x in nums]",
        [{"nums": [1, 2, 3]}, {"nums": [-4, 0, 5]}, {"nums": [7]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [2, 2, 2]}, {"nums": [1000, -1000]}, {"nums": [3, 1, 2]},
         {"nums": [10, 20, 30, 40]}, {"nums": [-5, -6]}, {"nums": [9, 0, 9]}],
        _NUMS,
    ),
    _problem(
        "list_map", "add_k",
        """Given a list of integers nums and an integer k, return a new list where k is added to every
        element, in the same order.""",
        "def addToAll(self, nums: List[int], k: int) -> List[int]:",
        "return [x + k for x in nums]",
        [{"nums": [1, 2, 3], "k": 10}, {"nums": [-4, 0, 5], "k": -1}, {"nums": [7], "k": 0},
         {"nums": [], "k": 5}, {"nums": [0], "k": 0}, {"nums": [-1], "k": 1}, {"nums": [2, 2, 2], "k": 3},
         {"nums": [1000, -1000], "k": -1000}, {"nums": [3, 1, 2], "k": -3}, {"nums": [10, 20], "k": 100},
         {"nums": [-5, -6], "k": 6}, {"nums": [9, 0, 9], "k": 1}],
        _NUMS_K,
    ),
    _problem(
        "list_map", "abs",
        """Given a list of integers nums, return a new list holding the absolute value of every element, in
        the same order.""",
        "def absAll(self, nums: List[int]) -> List[int]:",
        "return [abs(x) for x in nums]",
        [{"nums": [-1, 2, -3]}, {"nums": [4, 0, 5]}, {"nums": [-7]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [-2, -2, -2]}, {"nums": [1000, -1000]}, {"nums": [3, -1, 2]},
         {"nums": [-10, 20, -30, 40]}, {"nums": [-5, -6]}, {"nums": [9, 0, -9]}],
        _NUMS,
    ),
    # ------------------------------------------------------------------ keep some elements of a list
    _problem(
        "list_filter", "evens",
        """Given a list of integers nums, return a list of its even elements, in their original order.""",
        "def keepEvens(self, nums: List[int]) -> List[int]:",
        "return [x for x in nums if x % 2 == 0]",
        [{"nums": [1, 2, 3, 4]}, {"nums": [5, 7]}, {"nums": [-2, 0, 3]}, {"nums": []}, {"nums": [0]},
         {"nums": [1]}, {"nums": [2, 2, 2]}, {"nums": [-4, -3, -2]}, {"nums": [10, 11, 12, 13]},
         {"nums": [1000, -999]}, {"nums": [6, 1, 6]}, {"nums": [8]}],
        _NUMS,
    ),
    _problem(
        "list_filter", "positives",
        """Given a list of integers nums, return a list of its positive elements (those greater than 0), in
        their original order.""",
        "def keepPositives(self, nums: List[int]) -> List[int]:",
        "return [x for x in nums if x > 0]",
        [{"nums": [1, -2, 3]}, {"nums": [-5, -7]}, {"nums": [0, 4, 0, 6]}, {"nums": []}, {"nums": [0]},
         {"nums": [-1]}, {"nums": [9]}, {"nums": [2, 2, -2, 2]}, {"nums": [1000, -1000, 1]},
         {"nums": [-3, 0, 0, 5]}, {"nums": [30, 20, 10]}, {"nums": [-8, 8]}],
        _NUMS,
    ),
    _problem(
        "list_filter", "remove_k",
        """Given a list of integers nums and an integer k, return a list of the elements of nums that are not
        equal to k, in their original order.""",
        "def removeAll(self, nums: List[int], k: int) -> List[int]:",
        "return [x for x in nums if x != k]",
        [{"nums": [1, 2, 1, 3], "k": 1}, {"nums": [4, 5, 6], "k": 7}, {"nums": [-2, -2], "k": -2},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [5], "k": 5}, {"nums": [5], "k": -5},
         {"nums": [3, 3, 4, 3], "k": 3}, {"nums": [1, 2, 3, 4, 5], "k": 4}, {"nums": [9, 8, 9, 8], "k": 8},
         {"nums": [1000, -1000], "k": 1000}, {"nums": [0, 1, 0, 1], "k": 0}],
        _NUMS_K,
    ),
    # ------------------------------------------------------------------ a yes/no property of an integer
    _problem(
        "is_number", "even",
        """Given an integer n, return True if n is even and False otherwise.""",
        "def isEven(self, n: int) -> bool:",
        "return n % 2 == 0",
        [{"n": 4}, {"n": 7}, {"n": 0}, {"n": -2}, {"n": -3}, {"n": 1}, {"n": 2}, {"n": 1000000},
         {"n": 999999}, {"n": -1000000000}, {"n": 13}, {"n": 88}],
        ["-10^9 <= n <= 10^9"],
    ),
    _problem(
        "is_number", "multiple_of_k",
        """Given an integer n and a positive integer k, return True if n is a multiple of k (n divided by k
        leaves no remainder) and False otherwise.""",
        "def isMultiple(self, n: int, k: int) -> bool:",
        "return n % k == 0",
        [{"n": 12, "k": 4}, {"n": 10, "k": 3}, {"n": 0, "k": 5}, {"n": 7, "k": 1}, {"n": -9, "k": 3},
         {"n": -10, "k": 3}, {"n": 5, "k": 10}, {"n": 100, "k": 10}, {"n": 1, "k": 2},
         {"n": 49, "k": 7}, {"n": 50, "k": 7}, {"n": 1000000, "k": 100}],
        ["-10^9 <= n <= 10^9", "1 <= k <= 1000"],
    ),
    _problem(
        "is_number", "palindrome",
        """Given an integer n, return True if its decimal digits read the same forwards and backwards, and
        False otherwise. A negative number is never a palindrome.""",
        "def isPalindromeNumber(self, n: int) -> bool:",
        "return str(n) == str(n)[::-1]",
        [{"n": 121}, {"n": 123}, {"n": 7}, {"n": 0}, {"n": -121}, {"n": 10}, {"n": 11}, {"n": 1221},
         {"n": 12321}, {"n": 1000}, {"n": 1001}, {"n": 98789}],
        ["-10^9 <= n <= 10^9"],
    ),
    # ------------------------------------------------------------------ over the range 1..n
    _problem(
        "range", "sum_to_n",
        """Given a non-negative integer n, return the sum of the integers from 1 to n (both included). For
        n = 0 the sum is 0.""",
        "def sumToN(self, n: int) -> int:",
        "return sum(range(1, n + 1))",
        [{"n": 3}, {"n": 10}, {"n": 1}, {"n": 0}, {"n": 2}, {"n": 5}, {"n": 100}, {"n": 99},
         {"n": 1000}, {"n": 7}, {"n": 50}, {"n": 12}],
        ["0 <= n <= 1000"],
    ),
    _problem(
        "range", "sum_squares_to_n",
        """Given a non-negative integer n, return the sum of the squares of the integers from 1 to n (both
        included), that is 1*1 + 2*2 + ... + n*n. For n = 0 the sum is 0.""",
        "def sumSquaresToN(self, n: int) -> int:",
        "return sum(i * i for i in range(1, n + 1))",
        [{"n": 3}, {"n": 10}, {"n": 1}, {"n": 0}, {"n": 2}, {"n": 5}, {"n": 100}, {"n": 99},
         {"n": 1000}, {"n": 7}, {"n": 50}, {"n": 12}],
        ["0 <= n <= 1000"],
    ),
    _problem(
        "range", "factorial",
        """Given a non-negative integer n, return the product of the integers from 1 to n (both included),
        that is n factorial. For n = 0 the product is 1.""",
        "def factorialOf(self, n: int) -> int:",
        "return math.prod(range(1, n + 1))",
        [{"n": 3}, {"n": 5}, {"n": 1}, {"n": 0}, {"n": 2}, {"n": 4}, {"n": 10}, {"n": 6},
         {"n": 12}, {"n": 7}, {"n": 20}, {"n": 15}],
        ["0 <= n <= 20"],
    ),
    # ------------------------------------------------------------------ words of a sentence
    _problem(
        "words", "count",
        """Given a string s, return how many words it has. A word is a maximal run of non-space characters;
        words may be separated by several spaces, and s may start or end with spaces.""",
        "def countWords(self, s: str) -> int:",
        "return len(s.split())",
        [{"s": "the sky is blue"}, {"s": "  hello   world "}, {"s": "one"}, {"s": ""}, {"s": "   "},
         {"s": "a b c d e"}, {"s": "x"}, {"s": "Hello, World!"}, {"s": "  lead"}, {"s": "trail  "},
         {"s": "double  space  here"}, {"s": "1 2 3"}],
        _S,
    ),
    _problem(
        "words", "first",
        """Given a string s, return its first word, or an empty string if it has no words. A word is a
        maximal run of non-space characters; s may start with spaces.""",
        "def firstWord(self, s: str) -> str:",
        """
        words = s.split()
        return words[0] if words else ''
        """,
        [{"s": "the sky is blue"}, {"s": "  hello   world "}, {"s": "one"}, {"s": ""}, {"s": "   "},
         {"s": "a b c d e"}, {"s": "x"}, {"s": "Hello, World!"}, {"s": "  lead"}, {"s": "trail  "},
         {"s": "double  space  here"}, {"s": "1 2 3"}],
        _S,
    ),
    _problem(
        "words", "longest_length",
        """Given a string s, return the length of its longest word, or 0 if it has no words. A word is a
        maximal run of non-space characters.""",
        "def longestWordLength(self, s: str) -> int:",
        "return max((len(w) for w in s.split()), default=0)",
        [{"s": "the sky is blue"}, {"s": "  hello   world "}, {"s": "a bb ccc"}, {"s": ""}, {"s": "   "},
         {"s": "a b c d e"}, {"s": "x"}, {"s": "Hello, World!"}, {"s": "  lead"}, {"s": "trail  "},
         {"s": "double  space  here"}, {"s": "supercalifragilistic is long"}],
        _S,
    ),
    # ------------------------------------------------------------------ position of an element in a list
    _problem(
        "index", "first_k",
        """Given a list of integers nums and an integer k, return the index of the first element of nums that
        is equal to k, or -1 if there is none.""",
        "def firstIndex(self, nums: List[int], k: int) -> int:",
        "return nums.index(k) if k in nums else -1",
        [{"nums": [4, 2, 7, 2], "k": 2}, {"nums": [1, 3, 5], "k": 4}, {"nums": [9], "k": 9},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [5, 5, 5], "k": 5},
         {"nums": [1, 2, 3, 4, 5], "k": 5}, {"nums": [-1, -2, -3], "k": -3}, {"nums": [8, 6, 8], "k": 6},
         {"nums": [1000, -1000], "k": -1000}, {"nums": [3, 1, 3, 1], "k": 1}, {"nums": [2], "k": -2}],
        _NUMS_K,
    ),
    _problem(
        "index", "last_k",
        """Given a list of integers nums and an integer k, return the index of the last element of nums that
        is equal to k, or -1 if there is none.""",
        "def lastIndex(self, nums: List[int], k: int) -> int:",
        "return max((i for i, x in enumerate(nums) if x == k), default=-1)",
        [{"nums": [4, 2, 7, 2], "k": 2}, {"nums": [1, 3, 5], "k": 4}, {"nums": [9], "k": 9},
         {"nums": [], "k": 0}, {"nums": [0], "k": 0}, {"nums": [5, 5, 5], "k": 5},
         {"nums": [1, 2, 3, 4, 5], "k": 1}, {"nums": [-1, -2, -3], "k": -3}, {"nums": [8, 6, 8], "k": 8},
         {"nums": [1000, -1000], "k": 1000}, {"nums": [3, 1, 3, 1], "k": 3}, {"nums": [2], "k": -2}],
        _NUMS_K,
    ),
    _problem(
        "index", "min",
        """Given a non-empty list of integers nums, return the index of its smallest element. If the smallest
        value appears several times, return the first of its indices.""",
        "def indexOfMin(self, nums: List[int]) -> int:",
        "return nums.index(min(nums))",
        [{"nums": [4, 2, 7, 2]}, {"nums": [1, 3, 5]}, {"nums": [9, 8, 7]}, {"nums": [0]}, {"nums": [5, 5, 5]},
         {"nums": [-1, -2, -3]}, {"nums": [3, -1000, 1000]}, {"nums": [8, 6, 8, 6]}, {"nums": [2, 1]},
         {"nums": [0, 0, -1, 0]}, {"nums": [10, 20, 30, 5]}, {"nums": [-7]}],
        _NONEMPTY,
    ),
    # ------------------------------------------------------------------ two lists, position by position
    _problem(
        "two_lists", "add",
        """Given two lists of integers a and b of the same length, return a list whose element i is
        a[i] + b[i].""",
        "def addLists(self, a: List[int], b: List[int]) -> List[int]:",
        "return [x + y for x, y in zip(a, b)]",
        [{"a": [1, 2, 3], "b": [4, 5, 6]}, {"a": [-1, 0], "b": [1, 0]}, {"a": [7], "b": [3]},
         {"a": [], "b": []}, {"a": [0], "b": [0]}, {"a": [5, 5, 5], "b": [-5, -5, -5]},
         {"a": [1000, -1000], "b": [1000, -1000]}, {"a": [2, 4, 6, 8], "b": [1, 1, 1, 1]},
         {"a": [-3], "b": [-4]}, {"a": [9, 0, 9], "b": [0, 9, 0]}, {"a": [1, 2], "b": [2, 1]},
         {"a": [10, 20, 30], "b": [-10, 5, 0]}],
        _AB,
    ),
    _problem(
        "two_lists", "max",
        """Given two lists of integers a and b of the same length, return a list whose element i is the larger
        of a[i] and b[i].""",
        "def maxOfPairs(self, a: List[int], b: List[int]) -> List[int]:",
        "return [max(x, y) for x, y in zip(a, b)]",
        [{"a": [1, 5, 3], "b": [4, 2, 6]}, {"a": [-1, 0], "b": [1, -5]}, {"a": [7], "b": [3]},
         {"a": [], "b": []}, {"a": [0], "b": [0]}, {"a": [5, 5, 5], "b": [-5, 6, -5]},
         {"a": [1000, -1000], "b": [-1000, 1000]}, {"a": [2, 4, 6, 8], "b": [1, 1, 1, 1]},
         {"a": [-3], "b": [-4]}, {"a": [9, 0, 9], "b": [0, 9, 0]}, {"a": [1, 2], "b": [2, 1]},
         {"a": [10, 20, 30], "b": [-10, 50, 30]}],
        _AB,
    ),
    _problem(
        "two_lists", "dot",
        """Given two lists of integers a and b of the same length, return the sum of a[i] * b[i] over every
        position i (0 for empty lists).""",
        "def dotProduct(self, a: List[int], b: List[int]) -> int:",
        "return sum(x * y for x, y in zip(a, b))",
        [{"a": [1, 2, 3], "b": [4, 5, 6]}, {"a": [-1, 0], "b": [1, 7]}, {"a": [7], "b": [3]},
         {"a": [], "b": []}, {"a": [0], "b": [0]}, {"a": [5, 5, 5], "b": [-5, -5, -5]},
         {"a": [1000, -1000], "b": [1000, -1000]}, {"a": [2, 4, 6, 8], "b": [1, 1, 1, 1]},
         {"a": [-3], "b": [-4]}, {"a": [9, 0, 9], "b": [0, 9, 0]}, {"a": [1, 2], "b": [2, 1]},
         {"a": [10, 20, 30], "b": [-10, 5, 0]}],
        _AB,
    ),
]
# fmt: on

FAMILIES: dict[str, list[str]] = {}
for _d in PROBLEMS:
    FAMILIES.setdefault(_d["family"], []).append(_d["id"])
