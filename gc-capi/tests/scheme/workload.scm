;; A guile workload for gc-capi/tests/guile.rs: closures, hash tables, strings,
;; weak tables, guardians and threads.  Every line it prints must be the same on bdwgc
;; (libgc.so.1) and on dunegc; counts that depend on conservative scanning are printed
;; as thresholds.
(use-modules (ice-9 threads) (srfi srfi-1))

(define (show . xs) (display xs) (newline))

;; Closures over mutable state.
(define (make-counter)
  (let ((n 0)) (lambda () (set! n (+ n 1)) n)))
(define counters (map (lambda (i) (make-counter)) (iota 1000)))
(for-each (lambda (c) (c) (c)) counters)
(gc)
(show 'closures (apply + (map (lambda (c) (c)) counters)))

;; Hash tables of strings, with garbage in between.
(define h (make-hash-table))
(do ((i 0 (+ i 1))) ((= i 50000))
  (hash-set! h (string-append "key-" (number->string i))
             (make-string (modulo i 50) #\x))
  (when (= 0 (modulo i 1000)) (make-list 1000 i)))
(gc)
(show 'hash (hash-count (const #t) h)
      (string-length (hash-ref h "key-12345"))
      (hash-ref h "missing" 'none))
(define total 0)
(hash-for-each (lambda (k v) (set! total (+ total (string-length k) (string-length v)))) h)
(show 'hash-bytes total)

;; Strings built up and taken apart.
(define s (string-join (map number->string (iota 20000)) ","))
(show 'string (string-length s) (length (string-split s #\,)) (string-take s 10))

;; Weak-key table: strongly held keys stay, dropped ones go.
(define wk (make-weak-key-hash-table))
(define kept (map (lambda (i) (list 'k i)) (iota 200)))
(for-each (lambda (k) (hash-set! wk k (cadr k))) kept)
(define (add-temporaries n)
  (do ((i 0 (+ i 1))) ((= i n)) (hash-set! wk (list 'tmp i) i)))
(add-temporaries 5000)
(gc) (gc) (gc)
(show 'weak-kept (count (lambda (k) (eqv? (hash-ref wk k #f) (cadr k))) kept))
(show 'weak-dropped-most (< (hash-fold (lambda (k v n) (+ n 1)) 0 wk) 2000))

;; Weak-value table.
(define wv (make-weak-value-hash-table))
(define held-values (map (lambda (i) (string-copy (number->string i))) (iota 100)))
(for-each (lambda (i v) (hash-set! wv i v)) (iota 100) held-values)
(do ((i 100 (+ i 1))) ((= i 3000)) (hash-set! wv i (string-copy "temporary")))
(gc) (gc) (gc)
(show 'weak-values-kept (count (lambda (i) (hash-ref wv i #f)) (iota 100)))
(show 'weak-values-dropped-most (< (hash-fold (lambda (k v n) (+ n 1)) 0 wv) 1500))

;; Guardians: dropped objects come back, held ones do not.
(define g (make-guardian))
(define (fill-guardian n)
  (do ((i 0 (+ i 1))) ((= i n)) (g (list 'guarded i))))
(fill-guardian 2000)
(define held (list 'held))
(g held)
(gc) (gc) (gc)
(define returned
  (let loop ((n 0) (saw-held #f))
    (let ((x (g)))
      (if x (loop (+ n 1) (or saw-held (eq? x held))) (cons n saw-held)))))
(show 'guardian-returned-most (> (car returned) 1500) 'held-returned (cdr returned))

;; Threads, each with its own tables and garbage, and a shared mutex-protected list.
(define m (make-mutex))
(define shared '())
(define (worker t)
  (let ((ht (make-hash-table)))
    (do ((i 0 (+ i 1))) ((= i 20000))
      (hash-set! ht i (list t i (number->string i)))
      (when (= 0 (modulo i 5000))
        (with-mutex m (set! shared (cons (list t i) shared)))))
    (gc)
    (let ((sum 0))
      (hash-for-each (lambda (k v) (set! sum (+ sum (cadr v)))) ht)
      (list t (hash-count (const #t) ht) sum))))
(define threads (map (lambda (t) (call-with-new-thread (lambda () (worker t)))) (iota 4)))
(show 'threads (map join-thread threads) (length shared))
(show 'par-map (par-map (lambda (i) (string-length (make-string (* i 1000) #\a))) (iota 8)))
(show 'done)
